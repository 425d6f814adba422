//! The served OpenAPI document, finished where poem-openapi leaves it short,
//! and the table of methods per route that a 405's `Allow` header names.

use poem::http::Method;
use serde_json::Value;

/// Says of every JSON request body what poem-openapi leaves out: it is
/// closed (`additionalProperties: false`, as every body type denies unknown
/// fields), and its optional fields take `null` (as absent, or for a PATCH
/// as "clear it").
pub fn finish(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
        return spec.to_owned();
    };
    let mut bodies = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for item in paths.values().filter_map(Value::as_object) {
            for op in item.values() {
                let Some(content) = op["requestBody"]["content"].as_object() else {
                    continue;
                };
                for (media, body) in content {
                    let reference = body["schema"]["$ref"].as_str();
                    if media.starts_with("application/json")
                        && let Some(name) =
                            reference.and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        bodies.push(name.to_owned());
                    }
                }
            }
        }
    }
    // Multipart forms are inline; they deny unknown fields too.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                // `get_mut`, as indexing a `Value` mutably inserts nulls.
                let content = op
                    .get_mut("requestBody")
                    .and_then(|b| b.get_mut("content"))
                    .and_then(Value::as_object_mut);
                if let Some(content) = content {
                    for (media, body) in content.iter_mut() {
                        if media.starts_with("multipart/")
                            && let Some(schema) =
                                body.get_mut("schema").and_then(Value::as_object_mut)
                        {
                            schema.insert("additionalProperties".into(), Value::Bool(false));
                        }
                    }
                }
            }
        }
    }
    // The objects a body holds are closed too (their types deny unknown
    // fields as well), however deep.
    let mut queue = bodies.clone();
    while let Some(name) = queue.pop() {
        let mut found = Vec::new();
        refs_in(&doc["components"]["schemas"][&name], &mut found);
        for r in found {
            if !bodies.contains(&r) {
                bodies.push(r.clone());
                queue.push(r);
            }
        }
    }
    for name in bodies {
        let Some(schema) = doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(&name))
        else {
            continue;
        };
        let required: Vec<Value> = schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for (field, prop) in props.iter_mut() {
                if !required.contains(&Value::String(field.clone())) {
                    nullable(prop);
                }
            }
        }
        if let Some(schema) = schema.as_object_mut()
            && schema.contains_key("properties")
        {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// The component schemas `value` refers to, anywhere inside it.
fn refs_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(name) = v
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    found.push(name.to_owned());
                } else {
                    refs_in(v, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, found)),
        _ => {}
    }
}

fn nullable(prop: &mut Value) {
    let Some(obj) = prop.as_object_mut() else {
        return;
    };
    // OpenAPI 3.0 ignores siblings of `$ref`, so a reference is wrapped.
    if let Some(reference) = obj.remove("$ref") {
        obj.insert(
            "allOf".into(),
            Value::Array(vec![serde_json::json!({ "$ref": reference })]),
        );
    }
    obj.insert("nullable".into(), Value::Bool(true));
}

/// Route templates and their methods, read from the document.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    routes: Vec<(Vec<String>, Vec<Method>)>,
}

impl Methods {
    pub fn from_spec(spec: &str) -> Self {
        let doc: Value = serde_json::from_str(spec).unwrap_or_default();
        let routes = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, item)| {
                        let methods = item
                            .as_object()
                            .map(|ops| {
                                ops.keys()
                                    .filter_map(|m| m.to_uppercase().parse().ok())
                                    .collect()
                            })
                            .unwrap_or_default();
                        (segments(path), methods)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { routes }
    }

    /// The methods `path` answers to, as an `Allow` value.
    pub fn allow(&self, path: &str) -> Option<String> {
        let route = self.route(path)?;
        let mut names: Vec<&str> = route.1.iter().map(Method::as_str).collect();
        names.sort_unstable();
        Some(names.join(", "))
    }

    /// The template `path` matches (`/v1/instances/{id}`), for labels.
    pub fn template(&self, path: &str) -> Option<String> {
        self.route(path).map(|(t, _)| t.join("/"))
    }

    /// The matching route; a literal segment beats a parameter.
    fn route(&self, path: &str) -> Option<&(Vec<String>, Vec<Method>)> {
        let asked = segments(path);
        self.routes
            .iter()
            .filter(|(template, _)| {
                template.len() == asked.len()
                    && template
                        .iter()
                        .zip(&asked)
                        .all(|(t, a)| t.starts_with('{') || t == a)
            })
            .max_by_key(|(template, _)| template.iter().filter(|t| !t.starts_with('{')).count())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"{
        "paths": {
            "/v1/things": {
                "get": {},
                "post": {"requestBody": {"content": {"application/json; charset=utf-8":
                    {"schema": {"$ref": "#/components/schemas/NewThing"}}}}}
            },
            "/v1/things/{id}": {"get": {}, "delete": {}}
        },
        "components": {"schemas": {
            "NewThing": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "string"}, "b": {"type": "string"},
                "c": {"$ref": "#/components/schemas/Thing"},
                "d": {"type": "array", "items": {"$ref": "#/components/schemas/Part"}}}},
            "Thing": {"type": "object"},
            "Part": {"type": "object", "properties": {"x": {"type": "string"}}},
            "Reply": {"type": "object", "properties": {"y": {"type": "string"}}}}}
    }"##;

    #[test]
    fn request_bodies_and_what_they_hold_are_closed_and_nothing_else() {
        let doc: Value = serde_json::from_str(&finish(SPEC)).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["NewThing"]["additionalProperties"], false);
        assert!(schemas["Thing"].get("additionalProperties").is_none());
        let props = &schemas["NewThing"]["properties"];
        assert!(props["a"].get("nullable").is_none(), "required stays");
        assert_eq!(props["b"]["nullable"], true);
        assert_eq!(props["c"]["nullable"], true);
        assert_eq!(props["c"]["allOf"][0]["$ref"], "#/components/schemas/Thing");
        // Nothing is added where there was nothing.
        assert!(
            doc["paths"]["/v1/things/{id}"]["get"]
                .get("requestBody")
                .is_none()
        );
        assert!(schemas["Thing"].get("properties").is_none());
        // An object a body holds is closed too; one only answered is not.
        assert_eq!(schemas["Part"]["additionalProperties"], false);
        assert_eq!(schemas["Part"]["properties"]["x"]["nullable"], true);
        assert!(schemas["Reply"].get("additionalProperties").is_none());
        assert!(
            schemas["Reply"]["properties"]["y"]
                .get("nullable")
                .is_none()
        );
    }

    #[test]
    fn allow_names_the_route_methods() {
        let methods = Methods::from_spec(SPEC);
        assert_eq!(
            methods.allow("/v1/things/42").as_deref(),
            Some("DELETE, GET")
        );
        assert_eq!(methods.allow("/v1/things/").as_deref(), Some("GET, POST"));
        assert_eq!(methods.allow("/v1/other"), None);
        assert_eq!(
            methods.template("/v1/things/42").as_deref(),
            Some("/v1/things/{id}")
        );
    }
}
