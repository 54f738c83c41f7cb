//! Which requests only whitelisted addresses may make: the staff operations of the API,
//! by method and path template (`/api/webhooks/{id}`), as the served OpenAPI document lists
//! them. The rule follows the routes as declared, so a new staff route is covered by being
//! declared, not by someone remembering to add its prefix to a list.

/// One piece of a path template: a fixed word, or a `{parameter}` that any one segment fills.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

/// The staff operations, matched against requests.
#[derive(Debug, Clone, Default)]
pub struct StaffRoutes {
    operations: Vec<(String, Vec<Segment>)>,
}

impl StaffRoutes {
    /// From `(method, template)` pairs; methods in any case, templates as OpenAPI spells them.
    pub fn new<M: AsRef<str>, T: AsRef<str>>(operations: impl IntoIterator<Item = (M, T)>) -> Self {
        let operations = operations
            .into_iter()
            .map(|(method, template)| (method.as_ref().to_ascii_uppercase(), parse(template.as_ref())))
            .collect();
        Self { operations }
    }

    /// Is a request with this method and path one of the staff operations? `HEAD` is the
    /// `GET` of its path, as the router answers it.
    pub fn covers(&self, method: &str, path: &str) -> bool {
        let method = method.to_ascii_uppercase();
        let method = if method == "HEAD" { "GET" } else { method.as_str() };
        self.operations
            .iter()
            .any(|(m, template)| m == method && matches(template, path))
    }
}

fn parse(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Parameter
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

/// A parameter fills exactly one non-empty segment, as in the router.
fn matches(template: &[Segment], path: &str) -> bool {
    let mut segments = path.split('/');
    let mut pieces = template.iter();
    loop {
        match (pieces.next(), segments.next()) {
            (None, None) => return true,
            (Some(Segment::Literal(l)), Some(s)) if l == s => {}
            (Some(Segment::Parameter), Some(s)) if !s.is_empty() => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routes() -> StaffRoutes {
        StaffRoutes::new([
            ("get", "/api/inbox"),
            ("put", "/api/webhooks/{id}"),
            ("get", "/api/offline-messages"),
        ])
    }

    #[test]
    fn a_declared_operation_is_covered_by_method_and_path() {
        let r = routes();
        assert!(r.covers("GET", "/api/inbox"));
        assert!(r.covers("HEAD", "/api/inbox"));
        assert!(r.covers("PUT", "/api/webhooks/abc"));
        assert!(!r.covers("PUT", "/api/webhooks/"));
        assert!(!r.covers("PUT", "/api/webhooks/abc/x"));
        assert!(!r.covers("GET", "/api/webhooks/abc"));
        // the public POST of a path whose GET is staff
        assert!(!r.covers("POST", "/api/offline-messages"));
        assert!(!r.covers("GET", "/api/inboxes"));
    }

    proptest! {
        /// Any filling of a template's parameters is covered, and nothing longer or shorter.
        #[test]
        fn every_filling_of_a_template_is_covered(
            words in proptest::collection::vec("[a-z]{1,6}", 1..5),
            params in proptest::collection::vec(any::<bool>(), 1..5),
            values in proptest::collection::vec("[A-Za-z0-9%;=._-]{1,8}", 5),
        ) {
            let n = words.len().min(params.len());
            let template: String = (0..n)
                .map(|i| if params[i] { format!("/{{p{i}}}") } else { format!("/{}", words[i]) })
                .collect();
            let path: String = (0..n)
                .map(|i| if params[i] { format!("/{}", values[i]) } else { format!("/{}", words[i]) })
                .collect();
            let r = StaffRoutes::new([("post", template.as_str())]);
            prop_assert!(r.covers("POST", &path));
            prop_assert!(!r.covers("GET", &path));
            let longer = format!("{path}/x");
            prop_assert!(!r.covers("POST", &longer));
            let shorter = path.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
            prop_assert!(!r.covers("POST", shorter));
        }
    }
}
