//! Benchmarks of the gateway, kept out of its own package so that no bench
//! ships as a product binary. Each bench is a binary under `src/bin/` that
//! prints its figures.
