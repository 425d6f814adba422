//! The seed routes' original paths: an API whose operations live under
//! `/v1`, mounted a second time without the prefix. One handler serves both
//! paths; the document lists both, the unprefixed operation ids without
//! their `_v1` suffix so that every id stays unique.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry};

const PREFIX: &str = "/v1";
const SUFFIX: &str = "_v1";

pub struct Unversioned<A>(pub A);

impl<A: OpenApi> OpenApi for Unversioned<A> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        for path in apis.iter_mut().flat_map(|api| api.paths.iter_mut()) {
            if let Some(rest) = path.path.strip_prefix(PREFIX) {
                path.path = rest.to_owned();
            }
            for op in &mut path.operations {
                op.operation_id = op
                    .operation_id
                    .map(|id| id.strip_suffix(SUFFIX).unwrap_or(id));
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
    }

    fn add_routes(self, table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        let mut own = HashMap::new();
        self.0.add_routes(&mut own);
        for (path, methods) in own {
            let path = match path.strip_prefix(PREFIX) {
                Some(rest) => rest.to_owned(),
                None => path,
            };
            table.entry(path).or_default().extend(methods);
        }
    }
}
