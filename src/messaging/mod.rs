//! Messaging: phone numbers today; sending and tracking arrive with the
//! messaging issue.

pub mod phone;
