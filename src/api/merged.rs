//! One OpenAPI path item per path. poem-openapi writes a path item per API
//! struct, so two structs with operations on the same path (the message
//! log's GET beside the edit's PATCH and DELETE) would put the path in the
//! document twice and a reader would keep only the last.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry};

/// `T`'s APIs with the operations of a repeated path gathered into its
/// first path item.
pub struct Merged<T>(pub T);

impl<T: OpenApi> OpenApi for Merged<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        // Where each path's item lives: (api, index in its paths).
        let mut first: HashMap<String, (usize, usize)> = HashMap::new();
        for a in 0..apis.len() {
            let mut kept = Vec::new();
            for path in std::mem::take(&mut apis[a].paths) {
                match first.get(&path.path).copied() {
                    Some((i, j)) if i < a => apis[i].paths[j].operations.extend(path.operations),
                    Some((_, j)) => {
                        let item: &mut poem_openapi::registry::MetaPath = &mut kept[j];
                        item.operations.extend(path.operations);
                    }
                    None => {
                        first.insert(path.path.clone(), (a, kept.len()));
                        kept.push(path);
                    }
                }
            }
            apis[a].paths = kept;
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}
