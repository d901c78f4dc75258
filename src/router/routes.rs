//! Which InferenceService, and which of its components, a data-plane request is for.
//!
//! The router has one listener for every service, so each request is mapped by what the
//! caller could have meant, in this order:
//!
//! 1. **Host** `<name>.<namespace>.<domain>`, or the in-cluster forms `<name>.<namespace>`,
//!    `<name>.<namespace>.svc`, `<name>.<namespace>.svc.cluster.local`. KServe hands a
//!    transformer `--predictor_host <name>-predictor.<namespace>`, so `<name>-predictor`,
//!    `-transformer`, `-explainer` (and KServe's older `-predictor-default` etc.) name one
//!    component; the plain name goes to the entry component.
//! 2. **Path prefix** `/serving/<namespace>/<name>/...`, for clients that cannot set a Host
//!    header; the prefix is stripped so the model server sees the path it expects.
//! 3. **KServe model paths** `/v1/models/<model>...` and `/v2/models/<model>...`, so that
//!    `curl localhost:8080/v1/models/iris:predict` works when the model name is unambiguous.
//!
//! A component host with a traffic tag in front, `prev-<name>-predictor` or
//! `latest-<name>-predictor` (Knative's `{{.Tag}}-{{.Name}}`), reaches that one revision of
//! the component, whatever its share of the traffic.
//!
//! Everything here is pure: [`RouteTable::new`] builds the indexes once per configuration
//! change, and [`RouteTable::resolve`] does a few hash lookups per request.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::reconcile::traffic::{LATEST_TAG, PREV_TAG};
use crate::spec::validate::ComponentKind;

/// The host suffixes that name a single component. The `-default` forms are the hostnames
/// KServe's older (v1alpha2) releases gave components, still found in scripts.
const COMPONENT_SUFFIXES: [(&str, ComponentKind); 6] = [
    ("-predictor-default", ComponentKind::Predictor),
    ("-transformer-default", ComponentKind::Transformer),
    ("-explainer-default", ComponentKind::Explainer),
    ("-predictor", ComponentKind::Predictor),
    ("-transformer", ComponentKind::Transformer),
    ("-explainer", ComponentKind::Explainer),
];

/// How many existing services a 404 body lists; the rest are counted, not dropped silently.
const LISTED_SERVICES: usize = 20;

/// A Knative traffic tag KServe sets: the target has its own host `<tag>-<component host>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// The latest ready revision (with `serving.kserve.io/enable-tag-routing: "true"`).
    Latest,
    /// The rolled-out revision a canary shares the traffic with.
    Prev,
}

impl Tag {
    pub const ALL: [Tag; 2] = [Tag::Latest, Tag::Prev];

    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Latest => LATEST_TAG,
            Tag::Prev => PREV_TAG,
        }
    }

    pub fn parse(tag: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.as_str() == tag)
    }
}

/// What the router knows about one InferenceService for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoutes {
    pub namespace: String,
    pub name: String,
    /// The components it has (always a predictor; maybe a transformer and an explainer).
    pub components: Vec<ComponentKind>,
    /// Extra model names it answers to on /v1/models/<name> and /v2/models/<name>
    /// (e.g. a runtime's --model_name), besides its own name.
    pub model_names: Vec<String>,
    /// The traffic tags each component's targets have now.
    pub tags: Vec<(ComponentKind, Tag)>,
}

impl ServiceRoutes {
    fn has(&self, component: ComponentKind) -> bool {
        self.components.contains(&component)
    }

    /// The component a request naming the whole service goes to. KServe sends everything
    /// through the transformer when there is one (it calls the predictor itself), except
    /// `:explain`, which its ingress sends to the explainer.
    fn entry(&self, path: &str) -> ComponentKind {
        if is_explain(path) && self.has(ComponentKind::Explainer) {
            ComponentKind::Explainer
        } else if self.has(ComponentKind::Transformer) {
            ComponentKind::Transformer
        } else {
            ComponentKind::Predictor
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub namespace: String,
    pub service: String,
    pub component: ComponentKind,
    /// The path and query to forward (a `/serving/<ns>/<name>` prefix stripped; always starts with '/').
    pub path_and_query: String,
    /// A tag host: the request goes to that target's revision, not by the split.
    pub tag: Option<Tag>,
}

/// No route: says what was looked for, for the 404 body.
///
/// Besides the one-line `looked_for`, it keeps the request's host and path and the forms
/// that would have matched, so the body can show them as fields a user can compare with
/// what they sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// `host "..." and path "..."`, then why nothing matched when there is more to say
    /// than "nothing has that name" (a missing component, an ambiguous model name).
    pub looked_for: String,
    host: Option<String>,
    path: String,
    /// Patterns, with the configured domain filled in.
    forms: Vec<String>,
    /// Concrete hosts of existing services the user may have meant.
    services: Vec<String>,
}

impl NotFound {
    /// The 404 JSON body:
    ///
    /// ```json
    /// {"error": "no InferenceService matches host \"x\" and path \"/p\"",
    ///  "lookedFor": {"host": "x", "path": "/p",
    ///                "forms": ["Host <name>.<namespace>.localhost (...)", ...],
    ///                "services": ["iris.default.localhost:8080", ...]}}
    /// ```
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": format!("no InferenceService matches {}", self.looked_for),
            "lookedFor": {
                "host": self.host,
                "path": self.path,
                "forms": self.forms,
                "services": self.services,
            },
        })
        .to_string()
    }
}

/// The services the router knows, indexed for per-request lookups.
#[derive(Debug, Clone)]
pub struct RouteTable {
    domain: String,
    /// One per namespace/name, sorted, so that listings in 404 bodies are stable.
    services: Vec<ServiceRoutes>,
    /// namespace → name → index into `services`; nested so lookups borrow the request's
    /// strings instead of building a key.
    by_namespace: HashMap<String, HashMap<String, usize>>,
    /// Model name (a service's name or one of its `model_names`) → the services answering
    /// to it, sorted; more than one is an ambiguity reported at request time.
    by_model: HashMap<String, Vec<usize>>,
}

/// How a name in a host or a `/serving/` prefix resolved.
struct NameMatch {
    service: usize,
    /// `None` for the service's own name (entry component), `Some` for `<name>-predictor` etc.
    component: Option<ComponentKind>,
    /// `prev-<name>-predictor` etc.
    tag: Option<Tag>,
}

impl RouteTable {
    /// `domain` is the configured domain (default "localhost"). It is compared with hosts
    /// lowercased and without surrounding dots, as DNS does.
    ///
    /// If two entries share a namespace and name, the last one wins: it is the same
    /// service, and counting it twice would make its model name look ambiguous.
    pub fn new(domain: &str, services: impl IntoIterator<Item = ServiceRoutes>) -> RouteTable {
        let domain = domain.trim().trim_matches('.').to_ascii_lowercase();
        let mut unique = BTreeMap::new();
        for service in services {
            unique.insert((service.namespace.clone(), service.name.clone()), service);
        }
        let services: Vec<ServiceRoutes> = unique.into_values().collect();

        let mut by_namespace: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut by_model: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            by_namespace
                .entry(service.namespace.clone())
                .or_default()
                .insert(service.name.clone(), index);
            for model in std::iter::once(&service.name).chain(&service.model_names) {
                by_model.entry(model.clone()).or_default().push(index);
            }
        }
        for candidates in by_model.values_mut() {
            candidates.sort_unstable();
            candidates.dedup();
        }
        RouteTable {
            domain,
            services,
            by_namespace,
            by_model,
        }
    }

    /// Resolves a request by its Host header (may be None, may carry a port, any case) and its path-and-query.
    pub fn resolve(&self, host: Option<&str>, path_and_query: &str) -> Result<Routed, NotFound> {
        let target = normalize_target(path_and_query);
        let (path, query) = split_query(&target);
        let parsed = host.map(parse_host);
        let port = parsed.as_ref().and_then(|h| h.port);
        let mut notes = Vec::new();

        // 1. Host.
        if let Some(parsed) = &parsed {
            for (name, namespace) in self.host_candidates(&parsed.name) {
                match self.lookup(namespace, name) {
                    Some(found) => {
                        return self.route(found, &target, host, path_and_query, port);
                    }
                    None => notes.push(not_a_service(namespace, name)),
                }
            }
        }

        // 2. Path prefix.
        if let Some((namespace, name, rest)) = serving_prefix(path) {
            match self.lookup(namespace, name) {
                Some(found) => {
                    let rest = if rest.is_empty() { "/" } else { rest };
                    let forwarded = format!("{rest}{query}");
                    return self.route(found, &forwarded, host, path_and_query, port);
                }
                None => notes.push(format!(
                    "{} (from the /serving/ prefix)",
                    not_a_service(namespace, name)
                )),
            }
        }

        // 3. KServe model paths.
        if let Some(model) = model_in_path(path) {
            match self.by_model.get(model).map(Vec::as_slice) {
                Some(&[index]) => {
                    let service = &self.services[index];
                    return Ok(routed(service, service.entry(path), target.into_owned()));
                }
                Some(candidates) => {
                    let names: Vec<String> = candidates
                        .iter()
                        .map(|&i| {
                            let s = &self.services[i];
                            format!("{}/{}", s.namespace, s.name)
                        })
                        .collect();
                    let why = format!(
                        "model {model:?} is served by several InferenceServices ({}); \
                         name one with the Host header ({}) or the path prefix \
                         /serving/<namespace>/<name>/",
                        names.join(", "),
                        self.host_form("<name>", "<namespace>", None),
                    );
                    let hosts = candidates
                        .iter()
                        .map(|&i| self.service_host(&self.services[i], None, port))
                        .collect();
                    return Err(self.not_found(host, path_and_query, vec![why], hosts));
                }
                None => notes.push(format!(
                    "no InferenceService is named or serves a model named {model:?}"
                )),
            }
        }

        // 4. Nothing: show what exists, so a typo is easy to spot.
        let mut hosts: Vec<String> = self
            .services
            .iter()
            .take(LISTED_SERVICES)
            .map(|s| self.service_host(s, None, port))
            .collect();
        if self.services.len() > LISTED_SERVICES {
            hosts.push(format!(
                "... and {} more",
                self.services.len() - LISTED_SERVICES
            ));
        }
        Err(self.not_found(host, path_and_query, notes, hosts))
    }

    /// The URL users call: `http://<name>.<namespace>.<domain>:<port>` (port omitted when 80).
    pub fn url(&self, namespace: &str, name: &str, port: u16) -> String {
        format!("http://{}", self.host_form(name, namespace, Some(port)))
    }

    /// The configured domain, lowercased and without surrounding dots.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The (name, namespace) pairs a normalized host could mean, most specific first. Each
    /// in-cluster form is tried, not just the configured domain, because a transformer built
    /// for KServe calls `<name>-predictor.<namespace>` and must land here too.
    fn host_candidates<'h>(&self, host: &'h str) -> Vec<(&'h str, &'h str)> {
        let mut candidates = Vec::new();
        for suffix in [self.domain.as_str(), "svc.cluster.local", "svc", ""] {
            let rest = if suffix.is_empty() {
                host
            } else {
                match host.strip_suffix(suffix).and_then(|r| r.strip_suffix('.')) {
                    Some(rest) => rest,
                    None => continue,
                }
            };
            if let Some((name, namespace)) = rest.split_once('.') {
                let pair = (name, namespace);
                if !name.is_empty()
                    && !namespace.is_empty()
                    && !namespace.contains('.')
                    && !candidates.contains(&pair)
                {
                    candidates.push(pair);
                }
            }
        }
        candidates
    }

    /// A name as written in a host or a `/serving/` prefix: the service itself first, so
    /// that a service really called `foo-predictor` is not taken for `foo`'s predictor, then
    /// a component of a service, then a tagged component (`prev-foo-predictor`).
    fn lookup(&self, namespace: &str, name: &str) -> Option<NameMatch> {
        let names = self.by_namespace.get(namespace)?;
        if let Some(&service) = names.get(name) {
            return Some(NameMatch {
                service,
                component: None,
                tag: None,
            });
        }
        let component = |name: &str| {
            COMPONENT_SUFFIXES.iter().find_map(|&(suffix, kind)| {
                let base = name.strip_suffix(suffix).filter(|b| !b.is_empty())?;
                names.get(base).map(|&service| (service, kind))
            })
        };
        if let Some((service, kind)) = component(name) {
            return Some(NameMatch {
                service,
                component: Some(kind),
                tag: None,
            });
        }
        Tag::ALL.into_iter().find_map(|tag| {
            let rest = name.strip_prefix(tag.as_str())?.strip_prefix('-')?;
            component(rest).map(|(service, kind)| NameMatch {
                service,
                component: Some(kind),
                tag: Some(tag),
            })
        })
    }

    /// Routes a resolved name, or explains that the service lacks the component it names:
    /// falling through to another rule would send the request somewhere the caller did not
    /// ask for.
    fn route(
        &self,
        found: NameMatch,
        forwarded: &str,
        host: Option<&str>,
        path_and_query: &str,
        port: Option<u16>,
    ) -> Result<Routed, NotFound> {
        let service = &self.services[found.service];
        let (path, _) = split_query(forwarded);
        let component = match found.component {
            None => service.entry(path),
            Some(kind) if service.has(kind) => kind,
            Some(kind) => {
                let has: Vec<&str> = service.components.iter().map(|c| c.as_str()).collect();
                let why = format!(
                    "InferenceService {}/{} has no {} (it has: {})",
                    service.namespace,
                    service.name,
                    kind.as_str(),
                    has.join(", ")
                );
                let hosts = std::iter::once(None)
                    .chain(service.components.iter().map(|&c| Some(c)))
                    .map(|c| self.service_host(service, c, port))
                    .collect();
                return Err(self.not_found(host, path_and_query, vec![why], hosts));
            }
        };
        let mut routed = routed(service, component, forwarded.to_string());
        if let Some(tag) = found.tag {
            if !service.tags.contains(&(component, tag)) {
                let mut why = format!(
                    "the {} of InferenceService {}/{} has no traffic target tagged {:?}",
                    component.as_str(),
                    service.namespace,
                    service.name,
                    tag.as_str(),
                );
                why.push_str(match tag {
                    Tag::Prev => {
                        " (a \"prev\" target exists while canaryTrafficPercent splits the \
                         traffic with the rolled-out revision)"
                    }
                    Tag::Latest => {
                        " (set the annotation serving.kserve.io/enable-tag-routing: \"true\" \
                         for a \"latest\" target)"
                    }
                });
                let hosts = service
                    .tags
                    .iter()
                    .map(|&(kind, tag)| {
                        self.host_form(
                            &format!("{}-{}-{}", tag.as_str(), service.name, kind.as_str()),
                            &service.namespace,
                            port,
                        )
                    })
                    .collect();
                return Err(self.not_found(host, path_and_query, vec![why], hosts));
            }
            routed.tag = Some(tag);
        }
        Ok(routed)
    }

    /// `<name>.<namespace>.<domain>[:port]`, or `<name>.<namespace>` with no domain set.
    fn host_form(&self, name: &str, namespace: &str, port: Option<u16>) -> String {
        let mut host = format!("{name}.{namespace}");
        if !self.domain.is_empty() {
            host.push('.');
            host.push_str(&self.domain);
        }
        if let Some(port) = port.filter(|&p| p != 80) {
            host.push_str(&format!(":{port}"));
        }
        host
    }

    fn service_host(
        &self,
        service: &ServiceRoutes,
        component: Option<ComponentKind>,
        port: Option<u16>,
    ) -> String {
        match component {
            None => self.host_form(&service.name, &service.namespace, port),
            Some(kind) => self.host_form(
                &format!("{}-{}", service.name, kind.as_str()),
                &service.namespace,
                port,
            ),
        }
    }

    fn not_found(
        &self,
        host: Option<&str>,
        path_and_query: &str,
        notes: Vec<String>,
        services: Vec<String>,
    ) -> NotFound {
        let mut looked_for = match host {
            Some(host) => format!("host {host:?} and path {path_and_query:?}"),
            None => format!("path {path_and_query:?} (no Host header)"),
        };
        if !notes.is_empty() {
            looked_for.push_str(": ");
            looked_for.push_str(&notes.join("; "));
        }
        let service_host = self.host_form("<name>", "<namespace>", None);
        let component_host = self.host_form("<name>-predictor", "<namespace>", None);
        NotFound {
            looked_for,
            host: host.map(str::to_string),
            path: path_and_query.to_string(),
            forms: vec![
                format!(
                    "Host {service_host} (also <name>.<namespace>, <name>.<namespace>.svc, \
                     <name>.<namespace>.svc.cluster.local)"
                ),
                format!("Host {component_host} (or -transformer, -explainer) for one component"),
                "path /serving/<namespace>/<name>/... (any host)".to_string(),
                "path /v1/models/<model>:predict, /v1/models/<model>:explain, \
                 /v2/models/<model>/infer (any host; <model> is an InferenceService's name or \
                 a model name it serves, when only one service answers to it)"
                    .to_string(),
            ],
            services,
        }
    }
}

fn routed(service: &ServiceRoutes, component: ComponentKind, path_and_query: String) -> Routed {
    Routed {
        namespace: service.namespace.clone(),
        service: service.name.clone(),
        component,
        path_and_query,
        tag: None,
    }
}

/// Says which services were looked for, including the base a component suffix implies, so
/// a user who typed `irs-predictor` sees that `irs` was tried too.
fn not_a_service(namespace: &str, name: &str) -> String {
    let base = COMPONENT_SUFFIXES
        .iter()
        .find_map(|(suffix, _)| name.strip_suffix(suffix).filter(|b| !b.is_empty()));
    match base {
        Some(base) => format!("no InferenceService {namespace}/{name} or {namespace}/{base}"),
        None => format!("no InferenceService {namespace}/{name}"),
    }
}

/// A Host header's name (lowercased, port and one trailing dot stripped) and its port.
struct HostName {
    name: String,
    /// Used only to make the suggestions in a 404 body copy-pasteable.
    port: Option<u16>,
}

fn parse_host(raw: &str) -> HostName {
    let raw = raw.trim();
    let (name, port) = match raw.strip_prefix('[') {
        // An IPv6 literal never names a service, but its colons are not a port.
        Some(inner) => match inner.split_once(']') {
            Some((_, after)) => (&raw[..raw.len() - after.len()], after.strip_prefix(':')),
            None => (raw, None),
        },
        None => match raw.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        },
    };
    let name = name.to_ascii_lowercase();
    let name = match name.strip_suffix('.') {
        Some(stripped) => stripped.to_string(),
        None => name,
    };
    HostName {
        name,
        port: port.and_then(|p| p.parse().ok()),
    }
}

/// Always a path starting with '/': hyper gives "/" for an empty target, but callers and
/// tests may not, and the forwarded request must be valid.
fn normalize_target(path_and_query: &str) -> Cow<'_, str> {
    if path_and_query.starts_with('/') {
        Cow::Borrowed(path_and_query)
    } else {
        Cow::Owned(format!("/{path_and_query}"))
    }
}

/// The path, and the query with its '?' (empty when there is none), so the query can be
/// re-attached unchanged after a prefix is stripped.
fn split_query(path_and_query: &str) -> (&str, &str) {
    match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    }
}

/// `/serving/<namespace>/<name>` followed by the end or '/', as (namespace, name, rest).
fn serving_prefix(path: &str) -> Option<(&str, &str, &str)> {
    let after = path.strip_prefix("/serving/")?;
    let (namespace, after) = after.split_once('/')?;
    let (name, rest) = after.split_at(after.find('/').unwrap_or(after.len()));
    (!namespace.is_empty() && !name.is_empty()).then_some((namespace, name, rest))
}

/// The `<model>` of `/v1/models/<model>...` or `/v2/models/<model>...`: up to ':' (v1
/// verbs such as `:predict`) or '/' (v2 `/infer`, `/ready`, `/versions/<v>/...`).
fn model_in_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/v2/models/"))?;
    let model = &rest[..rest.find([':', '/']).unwrap_or(rest.len())];
    (!model.is_empty()).then_some(model)
}

/// KServe's v1 explain verb, which its ingress routes to the explainer.
fn is_explain(path: &str) -> bool {
    path.strip_prefix("/v1/models/")
        .and_then(|rest| rest.strip_suffix(":explain"))
        .is_some_and(|model| !model.is_empty() && !model.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComponentKind::{Explainer, Predictor, Transformer};

    fn service(namespace: &str, name: &str, components: &[ComponentKind]) -> ServiceRoutes {
        ServiceRoutes {
            namespace: namespace.to_string(),
            name: name.to_string(),
            components: components.to_vec(),
            model_names: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// default/iris (predictor only), default/bert (all three), team/llama (predictor,
    /// also serving "llama-7b"), default/foo-predictor and default/foo (with a transformer).
    fn table() -> RouteTable {
        let mut llama = service("team", "llama", &[Predictor]);
        llama.model_names = vec!["llama-7b".to_string()];
        RouteTable::new(
            "localhost",
            [
                service("default", "iris", &[Predictor]),
                service("default", "bert", &[Predictor, Transformer, Explainer]),
                llama,
                service("default", "foo-predictor", &[Predictor]),
                service("default", "foo", &[Predictor, Transformer]),
            ],
        )
    }

    /// Asserts where a request goes: (namespace, service, component, forwarded path).
    fn check(
        table: &RouteTable,
        host: Option<&str>,
        path: &str,
        expected: (&str, &str, ComponentKind, &str),
    ) {
        let (namespace, service, component, forwarded) = expected;
        assert_eq!(
            table.resolve(host, path),
            Ok(Routed {
                namespace: namespace.to_string(),
                service: service.to_string(),
                component,
                path_and_query: forwarded.to_string(),
                tag: None,
            }),
            "host {host:?} path {path:?}"
        );
    }

    fn not_found(table: &RouteTable, host: Option<&str>, path: &str) -> NotFound {
        match table.resolve(host, path) {
            Err(not_found) => not_found,
            Ok(routed) => panic!("host {host:?} path {path:?} routed to {routed:?}"),
        }
    }

    #[test]
    fn every_host_form_reaches_the_service() {
        let t = table();
        for host in [
            "iris.default.localhost",
            "iris.default",
            "iris.default.svc",
            "iris.default.svc.cluster.local",
        ] {
            check(
                &t,
                Some(host),
                "/v1/models/iris:predict",
                ("default", "iris", Predictor, "/v1/models/iris:predict"),
            );
        }
    }

    #[test]
    fn port_case_and_trailing_dot_are_ignored() {
        let t = table();
        for host in [
            "iris.default.localhost:8080",
            "IRIS.Default.LocalHost:8080",
            "iris.default.localhost.",
            "iris.default.localhost.:8080",
            "Iris.Default.Svc.Cluster.Local.:80",
        ] {
            check(&t, Some(host), "/", ("default", "iris", Predictor, "/"));
        }
    }

    #[test]
    fn a_configured_domain_replaces_localhost() {
        let t = RouteTable::new(".Example.COM.", [service("default", "iris", &[Predictor])]);
        assert_eq!(t.domain(), "example.com");
        check(
            &t,
            Some("iris.default.example.com:8080"),
            "/",
            ("default", "iris", Predictor, "/"),
        );
        let nf = not_found(&t, Some("iris.default.localhost"), "/");
        assert!(nf.body().contains("<name>.<namespace>.example.com"));
    }

    #[test]
    fn the_service_host_goes_to_the_transformer_when_there_is_one() {
        let t = table();
        check(
            &t,
            Some("bert.default.localhost"),
            "/v1/models/bert:predict",
            ("default", "bert", Transformer, "/v1/models/bert:predict"),
        );
        check(
            &t,
            Some("iris.default.localhost"),
            "/v2/models/iris/infer",
            ("default", "iris", Predictor, "/v2/models/iris/infer"),
        );
    }

    #[test]
    fn explain_goes_to_the_explainer_when_there_is_one() {
        let t = table();
        check(
            &t,
            Some("bert.default.localhost"),
            "/v1/models/bert:explain",
            ("default", "bert", Explainer, "/v1/models/bert:explain"),
        );
        check(
            &t,
            Some("bert.default.localhost"),
            "/v1/models/bert:explain?verbose=1",
            (
                "default",
                "bert",
                Explainer,
                "/v1/models/bert:explain?verbose=1",
            ),
        );
        // No explainer: the entry component answers (and says what it thinks).
        check(
            &t,
            Some("foo.default.localhost"),
            "/v1/models/foo:explain",
            ("default", "foo", Transformer, "/v1/models/foo:explain"),
        );
    }

    #[test]
    fn component_hosts_pick_that_component() {
        let t = table();
        for (host, component) in [
            ("bert-predictor.default", Predictor),
            ("bert-transformer.default.svc.cluster.local", Transformer),
            ("bert-explainer.default.localhost:8080", Explainer),
            ("bert-predictor-default.default", Predictor),
            ("bert-transformer-default.default.svc", Transformer),
            ("bert-explainer-default.default.localhost", Explainer),
        ] {
            check(
                &t,
                Some(host),
                "/v1/models/bert:predict",
                ("default", "bert", component, "/v1/models/bert:predict"),
            );
        }
    }

    #[test]
    fn a_missing_component_is_a_404_that_says_so() {
        let t = table();
        let nf = not_found(
            &t,
            Some("iris-explainer.default.localhost:8080"),
            "/v1/models/iris:explain",
        );
        assert!(
            nf.looked_for
                .contains("InferenceService default/iris has no explainer (it has: predictor)"),
            "{}",
            nf.looked_for
        );
        let body: serde_json::Value = serde_json::from_str(&nf.body()).unwrap();
        assert_eq!(
            body["lookedFor"]["services"],
            serde_json::json!([
                "iris.default.localhost:8080",
                "iris-predictor.default.localhost:8080"
            ])
        );
    }

    #[test]
    fn the_serving_prefix_is_stripped() {
        let t = table();
        for (path, forwarded) in [
            (
                "/serving/default/iris/v1/models/iris:predict?x=1&y=2",
                "/v1/models/iris:predict?x=1&y=2",
            ),
            ("/serving/default/iris", "/"),
            ("/serving/default/iris/", "/"),
            ("/serving/default/iris?x=1", "/?x=1"),
        ] {
            for host in [None, Some("localhost:8080"), Some("127.0.0.1")] {
                check(&t, host, path, ("default", "iris", Predictor, forwarded));
            }
        }
        check(
            &t,
            None,
            "/serving/default/bert/v1/models/bert:explain",
            ("default", "bert", Explainer, "/v1/models/bert:explain"),
        );
        check(
            &t,
            None,
            "/serving/default/bert/v1/models/bert:predict",
            ("default", "bert", Transformer, "/v1/models/bert:predict"),
        );
        check(
            &t,
            None,
            "/serving/default/bert-predictor/v1/models/bert:predict",
            ("default", "bert", Predictor, "/v1/models/bert:predict"),
        );
    }

    #[test]
    fn the_serving_prefix_matches_whole_segments_only() {
        let t = table();
        let nf = not_found(&t, None, "/serving/default/irisx/v1/models/x:predict");
        assert!(
            nf.looked_for.contains("no InferenceService default/irisx"),
            "{}",
            nf.looked_for
        );
    }

    #[test]
    fn kserve_model_paths_route_by_model_name() {
        let t = table();
        for path in [
            "/v1/models/iris",
            "/v1/models/iris:predict",
            "/v2/models/iris",
            "/v2/models/iris/ready",
            "/v2/models/iris/infer",
            "/v2/models/iris/versions/3/infer?trace=1",
        ] {
            for host in [
                None,
                Some("localhost:8080"),
                Some("host.docker.internal:8080"),
            ] {
                check(&t, host, path, ("default", "iris", Predictor, path));
            }
        }
        check(
            &t,
            Some("localhost"),
            "/v1/models/bert:explain",
            ("default", "bert", Explainer, "/v1/models/bert:explain"),
        );
        check(
            &t,
            Some("localhost"),
            "/v1/models/bert:predict",
            ("default", "bert", Transformer, "/v1/models/bert:predict"),
        );
    }

    #[test]
    fn model_names_are_aliases() {
        let t = table();
        check(
            &t,
            None,
            "/v2/models/llama-7b/infer",
            ("team", "llama", Predictor, "/v2/models/llama-7b/infer"),
        );
        check(
            &t,
            Some("localhost"),
            "/v1/models/llama:predict",
            ("team", "llama", Predictor, "/v1/models/llama:predict"),
        );
    }

    #[test]
    fn an_ambiguous_model_name_lists_the_candidates() {
        let mut shared = service("b", "other", &[Predictor]);
        shared.model_names = vec!["m".to_string()];
        let t = RouteTable::new(
            "localhost",
            [
                service("a", "m", &[Predictor]),
                shared,
                service("c", "unrelated", &[Predictor]),
            ],
        );
        let nf = not_found(&t, Some("localhost:8080"), "/v2/models/m/infer");
        assert!(
            nf.looked_for.contains(
                "model \"m\" is served by several InferenceServices (a/m, b/other); \
                 name one with the Host header (<name>.<namespace>.localhost) or the path \
                 prefix /serving/<namespace>/<name>/"
            ),
            "{}",
            nf.looked_for
        );
        let body: serde_json::Value = serde_json::from_str(&nf.body()).unwrap();
        assert_eq!(
            body["lookedFor"]["services"],
            serde_json::json!(["m.a.localhost:8080", "other.b.localhost:8080"])
        );
        // The host settles it.
        check(
            &t,
            Some("other.b.localhost:8080"),
            "/v2/models/m/infer",
            ("b", "other", Predictor, "/v2/models/m/infer"),
        );
    }

    #[test]
    fn the_same_service_twice_is_not_ambiguous() {
        let t = RouteTable::new(
            "localhost",
            [
                service("a", "m", &[Predictor]),
                service("a", "m", &[Predictor, Transformer]),
            ],
        );
        check(
            &t,
            None,
            "/v1/models/m:predict",
            ("a", "m", Transformer, "/v1/models/m:predict"),
        );
    }

    #[test]
    fn an_unknown_host_and_path_get_a_body_naming_them() {
        let t = table();
        let nf = not_found(
            &t,
            Some("irs.default.localhost:8080"),
            "/v1/models/irs:predict",
        );
        let body: serde_json::Value = serde_json::from_str(&nf.body()).unwrap();
        assert_eq!(
            body["error"],
            "no InferenceService matches host \"irs.default.localhost:8080\" and path \
             \"/v1/models/irs:predict\": no InferenceService default/irs; no InferenceService \
             is named or serves a model named \"irs\""
        );
        assert_eq!(body["lookedFor"]["host"], "irs.default.localhost:8080");
        assert_eq!(body["lookedFor"]["path"], "/v1/models/irs:predict");
        let forms = body["lookedFor"]["forms"].to_string();
        assert!(
            forms.contains("Host <name>.<namespace>.localhost"),
            "{forms}"
        );
        assert!(forms.contains("/serving/<namespace>/<name>/"), "{forms}");
        assert!(forms.contains("/v2/models/<model>/infer"), "{forms}");
        let services = body["lookedFor"]["services"].to_string();
        assert!(
            services.contains("\"iris.default.localhost:8080\""),
            "{services}"
        );

        let nf = not_found(&t, None, "/healthz");
        assert_eq!(nf.looked_for, "path \"/healthz\" (no Host header)");
        let body: serde_json::Value = serde_json::from_str(&nf.body()).unwrap();
        assert_eq!(body["lookedFor"]["host"], serde_json::Value::Null);

        let nf = not_found(&t, Some("irs-predictor.default"), "/");
        assert!(
            nf.looked_for
                .contains("no InferenceService default/irs-predictor or default/irs"),
            "{}",
            nf.looked_for
        );
    }

    #[test]
    fn a_404_lists_a_bounded_number_of_services() {
        let t = RouteTable::new(
            "localhost",
            (0..25).map(|i| service("default", &format!("s{i:02}"), &[Predictor])),
        );
        let nf = not_found(&t, None, "/");
        let body: serde_json::Value = serde_json::from_str(&nf.body()).unwrap();
        let services = body["lookedFor"]["services"].as_array().unwrap();
        assert_eq!(services.len(), LISTED_SERVICES + 1);
        assert_eq!(services[0], "s00.default.localhost");
        assert_eq!(services[LISTED_SERVICES], "... and 5 more");
    }

    #[test]
    fn a_service_named_like_a_component_wins_over_the_component() {
        let t = table();
        check(
            &t,
            Some("foo-predictor.default.localhost"),
            "/",
            ("default", "foo-predictor", Predictor, "/"),
        );
        check(
            &t,
            Some("foo-predictor-predictor.default"),
            "/",
            ("default", "foo-predictor", Predictor, "/"),
        );
        check(
            &t,
            Some("foo-transformer.default"),
            "/",
            ("default", "foo", Transformer, "/"),
        );
        check(
            &t,
            None,
            "/serving/default/foo-predictor/",
            ("default", "foo-predictor", Predictor, "/"),
        );
    }

    #[test]
    fn the_host_wins_over_the_path() {
        let t = table();
        check(
            &t,
            Some("iris.default.localhost"),
            "/serving/default/bert/v1/models/bert:predict",
            (
                "default",
                "iris",
                Predictor,
                "/serving/default/bert/v1/models/bert:predict",
            ),
        );
        check(
            &t,
            Some("iris.default.localhost"),
            "/v1/models/llama:predict",
            ("default", "iris", Predictor, "/v1/models/llama:predict"),
        );
    }

    #[test]
    fn odd_targets_and_hosts_do_not_break_routing() {
        let t = table();
        check(
            &t,
            Some("iris.default"),
            "",
            ("default", "iris", Predictor, "/"),
        );
        check(
            &t,
            Some("iris.default"),
            "?x=1",
            ("default", "iris", Predictor, "/?x=1"),
        );
        check(
            &t,
            Some("[::1]:8080"),
            "/v1/models/iris:predict",
            ("default", "iris", Predictor, "/v1/models/iris:predict"),
        );
        for host in ["", ":", ".", "[", "a..b", ".default", "iris.", "localhost"] {
            let nf = not_found(&t, Some(host), "/nothing");
            assert!(nf.body().contains("/nothing"));
        }
        assert!(not_found(&t, None, "/v1/models/")
            .looked_for
            .contains("/v1/models/"));
        assert!(not_found(&t, None, "/serving//iris/")
            .looked_for
            .contains("/serving//iris/"));
    }

    #[test]
    fn url_omits_port_80() {
        let t = table();
        assert_eq!(
            t.url("default", "iris", 80),
            "http://iris.default.localhost"
        );
        assert_eq!(
            t.url("default", "iris", 8080),
            "http://iris.default.localhost:8080"
        );
        assert_eq!(t.domain(), "localhost");
    }
}
