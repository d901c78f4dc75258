//! Pure placement: which GPUs (and how much cpu and memory) a replica gets, or why it is
//! pending, in Kubernetes' own words.
//!
//! The machine is seen the way kube-scheduler sees a cluster, with each GPU in the role of a
//! node: a GPU carries labels (its own, [`gpu_labels`], merged with the host's) and a replica's
//! `nodeSelector` and required node affinity must match every GPU it gets. Cpu and memory
//! belong to the one host. No I/O and no clock (DESIGN.md, rule 1): the daemon hands in the
//! inventory, the host, the current allocations and the request, and re-runs [`place`] on
//! every reconcile, so a pending replica is placed as soon as an allocation goes away.
//!
//! Decisions made here, with Kubernetes as the reference wherever it has an answer:
//! - Matching is `k8s.io/component-helpers/scheduling/corev1/nodeaffinity`: terms are ORed,
//!   a term's expressions (and fields) ANDed; `NotIn` and `DoesNotExist` match an absent
//!   label; `Gt`/`Lt` parse the requirement's one value and the label's value as base-10
//!   `int64` and fail when either does not parse or the label is absent; an empty term matches
//!   nothing; an invalid requirement (unknown operator, wrong number of values) fails its term.
//!   `matchFields` supports `metadata.name`, which is the host's `kubernetes.io/hostname`.
//!   An empty list of required terms means no required affinity: Kubernetes' API refuses an
//!   empty `nodeSelectorTerms`, so here an empty list can only mean the field was absent.
//! - Preferred terms score a GPU by the sum of the weights of the terms it matches (terms with
//!   weight 0 or an empty preference are skipped, as Kubernetes does); a set of GPUs scores the
//!   sum over its members. Every candidate set has exactly the requested size, so sum and
//!   average order sets identically.
//! - Among the sets that fit, the best is, in this order: the highest preference score (what
//!   the user asked for first); the fewest NUMA nodes; the fewest PCI `domain:bus` groups; the
//!   fewest wholly free NUMA nodes, then PCI groups, broken into (best fit, so whole groups
//!   stay free for the next multi-GPU replica); the smallest spread of PCI bus numbers (GPUs
//!   behind one PCIe switch have neighbouring bus numbers, but the distance is only a proxy, so
//!   it ranks below the groups); and last the lowest PCI bus ids, then UUIDs. Candidates are
//!   sorted by PCI bus id then UUID first, so their input order never matters. Up to
//!   [`EXHAUSTIVE_LIMIT`] sets are compared exhaustively (every machine of up to 16 GPUs);
//!   beyond that (a 32-GPU machine asked for 16) one set per seed GPU is built greedily and
//!   the best kept.
//! - A pending replica's reason names, per GPU, the first rule it fails, in filter order
//!   (`nodeSelector`, required affinity, then already allocated), counted like
//!   kube-scheduler's per-node messages and ordered by that filter order, then text:
//!   `0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [A40], 2 are allocated.`
//!   Cpu and memory use kube-scheduler's texts: `0/1 nodes are available: 1 Insufficient cpu.`
//!   When both GPUs and the host fall short, both sentences are given.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::gpu::{Gpu, Inventory, Labels};
use crate::spec::normalize::{Placement, Resources, GPU_CLASS_LABEL, GPU_RESOURCE};
use crate::spec::types::{NodeSelectorRequirement, NodeSelectorTerm};

/// The GPU's class in the reference platform's names (`A40`, `Quadro_RTX_5000`, ...).
pub const CLASS_LABEL: &str = GPU_CLASS_LABEL;
/// The NVML name made a valid label value ([`label_value`]).
pub const MODEL_LABEL: &str = "gpu.nvidia.com/model";
/// Total memory in GiB, rounded down.
pub const VRAM_LABEL: &str = "gpu.nvidia.com/vram";
/// The number of GPUs in the machine (a machine label, like GPU feature discovery's
/// `nvidia.com/gpu.count` on a node).
pub const COUNT_LABEL: &str = "gpu.nvidia.com/count";
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// The one field `matchFields` supports in Kubernetes: the node's name.
const NODE_NAME_FIELD: &str = "metadata.name";
const GIB: i64 = 1 << 30;
/// Kubernetes' limit on the length of a label value.
const LABEL_VALUE_MAX: usize = 63;

/// The most candidate GPU sets compared one by one; above it the seeded greedy search runs.
pub const EXHAUSTIVE_LIMIT: u64 = 20_000;

/// The machine as a node: its labels and what replicas may request of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// `kubernetes.io/hostname`, `topology.kubernetes.io/region`, `gpu.nvidia.com/count`, ...
    /// ([`machine_labels`]).
    pub labels: Labels,
    pub allocatable_cpu_millis: i64,
    pub allocatable_memory_bytes: i64,
}

/// Capacity minus the reservation, as a kubelet computes a node's allocatable (never below
/// zero; a negative reservation counts as none).
pub fn allocatable(
    capacity_cpu_millis: i64,
    capacity_memory_bytes: i64,
    reserved_cpu_millis: i64,
    reserved_memory_bytes: i64,
) -> (i64, i64) {
    let left = |capacity: i64, reserved: i64| capacity.saturating_sub(reserved.max(0)).max(0);
    (
        left(capacity_cpu_millis, reserved_cpu_millis),
        left(capacity_memory_bytes, reserved_memory_bytes),
    )
}

/// Turns free text (an NVML name) into a valid Kubernetes label value the way NVIDIA's GPU
/// feature discovery makes `nvidia.com/gpu.product`: spaces become `-`
/// (`Quadro RTX 5000` → `Quadro-RTX-5000`, `NVIDIA A100-SXM4-80GB` → `NVIDIA-A100-SXM4-80GB`).
/// Made total for any name: every other character outside `[A-Za-z0-9._-]` also becomes `-`,
/// the value is cut to 63 characters, and it is trimmed to start and end with an
/// alphanumeric character.
pub fn label_value(text: &str) -> String {
    let replaced: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = replaced.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut: String = trimmed.chars().take(LABEL_VALUE_MAX).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// A GPU's labels: `gpu.nvidia.com/class` (given: the class mapping lives in `gpu`),
/// `gpu.nvidia.com/model` (the NVML name through [`label_value`]) and `gpu.nvidia.com/vram`
/// (GiB rounded down, so a card that reports 15.9 GiB is `15`), merged over the host's
/// labels: where both have a key, the GPU's value wins.
pub fn gpu_labels(gpu: &Gpu, class: &str, host: &Labels) -> Labels {
    let mut labels = host.clone();
    labels.insert(CLASS_LABEL.to_string(), class.to_string());
    labels.insert(MODEL_LABEL.to_string(), label_value(&gpu.name));
    labels.insert(
        VRAM_LABEL.to_string(),
        (gpu.memory_bytes.max(0) / GIB).to_string(),
    );
    labels
}

/// The host's labels with `gpu.nvidia.com/count`, the number of GPUs in the machine (a
/// fact of the machine, so it replaces a configured value). This is what `Host::labels`
/// holds, and what every GPU's labels start from.
pub fn machine_labels(host: &Labels, inventory: &Inventory) -> Labels {
    let mut labels = host.clone();
    labels.insert(COUNT_LABEL.to_string(), inventory.gpus.len().to_string());
    labels
}

/// A GPU the scheduler may hand out, with the labels it is matched against.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub gpu: Gpu,
    pub labels: Labels,
}

/// Every GPU of the inventory as a candidate: `class_of` names each GPU's class, `host` is
/// the configured host labels (the count is added here, as in [`machine_labels`]).
pub fn candidates(
    inventory: &Inventory,
    host: &Labels,
    class_of: impl Fn(&Gpu) -> String,
) -> Vec<Candidate> {
    let machine = machine_labels(host, inventory);
    inventory
        .gpus
        .iter()
        .map(|gpu| Candidate {
            labels: gpu_labels(gpu, &class_of(gpu), &machine),
            gpu: gpu.clone(),
        })
        .collect()
}

/// What one replica needs. Cpu and memory are the *requests*: Kubernetes schedules on
/// requests and lets limits overcommit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub gpus: u32,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub placement: Placement,
}

impl Request {
    /// The request of a normalised container: an `nvidia.com/gpu` limit implies the same
    /// request, as in Kubernetes (the larger of the two counts if both are somehow set).
    pub fn from_resources(resources: &Resources, placement: &Placement) -> Request {
        let requested = resources
            .requests
            .get(GPU_RESOURCE)
            .map_or(0, |q| q.value());
        let gpus = resources.gpus.max(requested).clamp(0, i64::from(u32::MAX));
        Request {
            gpus: u32::try_from(gpus).unwrap_or(u32::MAX),
            cpu_millis: resources.cpu_request_millis,
            memory_bytes: resources.memory_request_bytes,
            placement: placement.clone(),
        }
    }
}

/// What a running (or starting) replica holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The replica, e.g. `default/iris/iris-predictor-00001/0`.
    pub owner: String,
    pub gpu_uuids: Vec<String>,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// Where a replica goes: its GPUs by UUID, in PCI bus id order (empty for a CPU-only one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub gpu_uuids: Vec<String>,
}

/// Why a replica is pending, in kube-scheduler's `FailedScheduling` style.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unschedulable {
    pub reason: String,
}

/// Places one replica: its GPUs (exclusive, every one matching its placement, the closest
/// set that fits) and its cpu and memory requests against what the host has left.
pub fn place(
    candidates: &[Candidate],
    host: &Host,
    allocations: &[Allocation],
    request: &Request,
) -> Result<Decision, Unschedulable> {
    let pending = |reason: String| Err(Unschedulable { reason });
    if request.gpus == 0 {
        // A CPU-only replica is a pod on the one node: kube-scheduler's NodeAffinity filter
        // runs before NodeResourcesFit and stops at the first failure.
        if mismatch(&host.labels, &request.placement).is_some() {
            return pending(node_message(&[
                "node(s) didn't match Pod's node affinity/selector",
            ]));
        }
        return match host_shortfall(host, allocations, request) {
            Some(reason) => pending(reason),
            None => Ok(Decision::default()),
        };
    }
    let gpus = choose_gpus(candidates, allocations, request);
    match (gpus, host_shortfall(host, allocations, request)) {
        (Ok(gpu_uuids), None) => Ok(Decision { gpu_uuids }),
        (Ok(_), Some(host)) => pending(host),
        (Err(gpus), None) => pending(gpus),
        (Err(gpus), Some(host)) => pending(format!("{gpus} {host}")),
    }
}

/// kube-scheduler's message for the one node, from its reasons.
fn node_message(reasons: &[&str]) -> String {
    let mut counted: Vec<String> = reasons.iter().map(|r| format!("1 {r}")).collect();
    counted.sort();
    format!("0/1 nodes are available: {}.", counted.join(", "))
}

/// `Insufficient cpu` / `Insufficient memory` when the request exceeds what allocations
/// leave of the host's allocatable. A zero request always fits, as in Kubernetes (even on an
/// overcommitted host).
fn host_shortfall(host: &Host, allocations: &[Allocation], request: &Request) -> Option<String> {
    let used_cpu = allocations
        .iter()
        .fold(0i64, |sum, a| sum.saturating_add(a.cpu_millis.max(0)));
    let used_memory = allocations
        .iter()
        .fold(0i64, |sum, a| sum.saturating_add(a.memory_bytes.max(0)));
    let mut reasons = Vec::new();
    if request.cpu_millis > 0
        && request.cpu_millis > host.allocatable_cpu_millis.saturating_sub(used_cpu)
    {
        reasons.push("Insufficient cpu");
    }
    if request.memory_bytes > 0
        && request.memory_bytes > host.allocatable_memory_bytes.saturating_sub(used_memory)
    {
        reasons.push("Insufficient memory");
    }
    (!reasons.is_empty()).then(|| node_message(&reasons))
}

/// The first required rule `labels` fail, described (`gpu.nvidia.com/class In [A40]`), or
/// `None` when they satisfy the `nodeSelector` and the required affinity.
fn mismatch(labels: &Labels, placement: &Placement) -> Option<String> {
    for (key, value) in &placement.node_selector {
        if labels.get(key) != Some(value) {
            return Some(format!("{key}={value}"));
        }
    }
    if placement.required.is_empty() {
        return None;
    }
    let mut failures = Vec::new();
    for term in &placement.required {
        match term_failure(labels, term) {
            None => return None,
            Some(failure) => failures.push(failure),
        }
    }
    Some(failures.join(" or "))
}

/// The first requirement of `term` that `labels` fail, or `None` when the term matches.
fn term_failure(labels: &Labels, term: &NodeSelectorTerm) -> Option<String> {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return Some("an empty nodeSelectorTerm".to_string());
    }
    for requirement in &term.match_expressions {
        let value = labels.get(&requirement.key).map(String::as_str);
        if !requirement_matches(value, requirement) {
            return Some(describe(requirement));
        }
    }
    for requirement in &term.match_fields {
        // Kubernetes allows only `metadata.name` with `In` / `NotIn` here.
        let supported = requirement.key == NODE_NAME_FIELD
            && matches!(requirement.operator.as_str(), "In" | "NotIn");
        let value = labels.get(HOSTNAME_LABEL).map(String::as_str);
        if !supported || !requirement_matches(value, requirement) {
            return Some(describe(requirement));
        }
    }
    None
}

/// One requirement against a label's value (`None`: the label is absent), exactly as
/// `labels.Requirement.Matches` evaluates it; an invalid requirement matches nothing.
fn requirement_matches(value: Option<&str>, requirement: &NodeSelectorRequirement) -> bool {
    let values = &requirement.values;
    match requirement.operator.as_str() {
        "In" => !values.is_empty() && value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => values.is_empty() && value.is_some(),
        "DoesNotExist" => values.is_empty() && value.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values.as_slice() else {
                return false;
            };
            let (Ok(bound), Some(Ok(value))) = (bound.parse::<i64>(), value.map(str::parse::<i64>))
            else {
                return false;
            };
            if op == "Gt" {
                value > bound
            } else {
                value < bound
            }
        }
        _ => false,
    }
}

/// `key In [a b]`, `key Exists`, `key Gt 40`: the operator as written in YAML, the values as
/// Go prints a list.
fn describe(requirement: &NodeSelectorRequirement) -> String {
    let NodeSelectorRequirement {
        key,
        operator,
        values,
    } = requirement;
    match values.as_slice() {
        [] => format!("{key} {operator}"),
        [one] if matches!(operator.as_str(), "Gt" | "Lt") => format!("{key} {operator} {one}"),
        _ => format!("{key} {operator} [{}]", values.join(" ")),
    }
}

/// The sum of the weights of the preferred terms `labels` match.
fn preference(labels: &Labels, placement: &Placement) -> i64 {
    placement
        .preferred
        .iter()
        .filter(|p| p.weight != 0 && term_failure(labels, &p.preference).is_none())
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A PCI address, `domain:bus:device.function` in hex (NVML writes an 8-digit domain,
/// `00000000:3B:00.0`; lspci a 4-digit one; a missing domain is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Pci {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl Pci {
    fn parse(text: &str) -> Option<Pci> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [domain, bus, slot] => (u32::from_str_radix(domain, 16).ok()?, *bus, *slot),
            [bus, slot] => (0, *bus, *slot),
            _ => return None,
        };
        let (device, function) = slot.split_once('.')?;
        Some(Pci {
            domain,
            bus: u8::from_str_radix(bus, 16).ok()?,
            device: u8::from_str_radix(device, 16).ok()?,
            function: u8::from_str_radix(function, 16).ok()?,
        })
    }

    /// The `domain:bus` group: GPUs sharing it sit on one bus.
    fn group(self) -> (u32, u8) {
        (self.domain, self.bus)
    }

    /// Domain and bus as one number, to measure how far apart two GPUs sit.
    fn position(self) -> u64 {
        (u64::from(self.domain) << 8) | u64::from(self.bus)
    }
}

/// Why a GPU cannot be part of the replica, in filter order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Mismatch(String),
    Allocated,
}

/// One candidate as the search sees it.
struct Slot<'a> {
    uuid: &'a str,
    pci: Option<Pci>,
    numa: Option<i32>,
    allocated: bool,
    failure: Option<Failure>,
    score: i64,
}

impl Slot<'_> {
    fn pci_group(&self) -> Option<(u32, u8)> {
        self.pci.map(Pci::group)
    }
}

/// The GPUs for a replica, or the GPU half of its pending reason.
fn choose_gpus(
    candidates: &[Candidate],
    allocations: &[Allocation],
    request: &Request,
) -> Result<Vec<String>, String> {
    let taken: HashSet<&str> = allocations
        .iter()
        .flat_map(|a| a.gpu_uuids.iter().map(String::as_str))
        .collect();
    let mut slots: Vec<Slot> = candidates
        .iter()
        .map(|c| {
            let allocated = taken.contains(c.gpu.uuid.as_str());
            let failure = match mismatch(&c.labels, &request.placement) {
                Some(why) => Some(Failure::Mismatch(why)),
                None if allocated => Some(Failure::Allocated),
                None => None,
            };
            Slot {
                uuid: &c.gpu.uuid,
                pci: c.gpu.pci_bus_id.as_deref().and_then(Pci::parse),
                numa: c.gpu.numa_node,
                allocated,
                failure,
                score: preference(&c.labels, &request.placement),
            }
        })
        .collect();
    // The canonical order: known PCI addresses first, by address, then by UUID.
    slots.sort_by(|a, b| (a.pci.is_none(), a.pci, a.uuid).cmp(&(b.pci.is_none(), b.pci, b.uuid)));

    let wanted = request.gpus as usize;
    let total = slots.len();
    let eligible: Vec<usize> = (0..total).filter(|&i| slots[i].failure.is_none()).collect();
    let header = if wanted > 1 {
        format!(
            "{}/{total} GPUs available, {wanted} requested",
            eligible.len()
        )
    } else {
        format!("{}/{total} GPUs available", eligible.len())
    };
    if wanted > total {
        let has = match total {
            0 => "no GPUs".to_string(),
            1 => "only 1 GPU".to_string(),
            n => format!("only {n} GPUs"),
        };
        return Err(format!("{header}: the machine has {has}."));
    }
    if eligible.len() < wanted {
        let mut counts: BTreeMap<&Failure, usize> = BTreeMap::new();
        for failure in slots.iter().filter_map(|s| s.failure.as_ref()) {
            *counts.entry(failure).or_default() += 1;
        }
        let reasons: Vec<String> = counts
            .into_iter()
            .map(|(failure, n)| match (failure, n) {
                (Failure::Mismatch(why), 1) => format!("1 does not match {why}"),
                (Failure::Mismatch(why), n) => format!("{n} do not match {why}"),
                (Failure::Allocated, 1) => "1 is allocated".to_string(),
                (Failure::Allocated, n) => format!("{n} are allocated"),
            })
            .collect();
        return Err(format!("{header}: {}.", reasons.join(", ")));
    }
    let search = Search::new(&slots);
    let best = if binomial(eligible.len(), wanted) <= EXHAUSTIVE_LIMIT {
        search.exhaustive(&eligible, wanted)
    } else {
        search.greedy(&eligible, wanted)
    };
    Ok(best
        .into_iter()
        .map(|i| slots[i].uuid.to_string())
        .collect())
}

/// How good a set of GPUs is: smaller is better, field by field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SetKey {
    /// The negated preference score.
    unpreferred: i64,
    numa_nodes: usize,
    pci_groups: usize,
    numa_broken: usize,
    pci_broken: usize,
    pci_spread: u64,
    /// The members' canonical positions, ascending: the lowest PCI bus ids, then UUIDs.
    members: Vec<usize>,
}

/// The set search over the canonically ordered slots.
struct Search<'s, 'a> {
    slots: &'s [Slot<'a>],
    /// NUMA nodes and PCI groups none of whose GPUs is allocated.
    whole_numa: BTreeSet<Option<i32>>,
    whole_pci: BTreeSet<Option<(u32, u8)>>,
}

impl<'s, 'a> Search<'s, 'a> {
    fn new(slots: &'s [Slot<'a>]) -> Self {
        let mut whole_numa: BTreeSet<_> = slots.iter().map(|s| s.numa).collect();
        let mut whole_pci: BTreeSet<_> = slots.iter().map(Slot::pci_group).collect();
        for slot in slots.iter().filter(|s| s.allocated) {
            whole_numa.remove(&slot.numa);
            whole_pci.remove(&slot.pci_group());
        }
        Search {
            slots,
            whole_numa,
            whole_pci,
        }
    }

    fn key(&self, members: &[usize]) -> SetKey {
        let chosen = || members.iter().map(|&i| &self.slots[i]);
        let numa: BTreeSet<Option<i32>> = chosen().map(|s| s.numa).collect();
        let pci: BTreeSet<Option<(u32, u8)>> = chosen().map(Slot::pci_group).collect();
        let positions: Vec<u64> = chosen().filter_map(|s| s.pci).map(Pci::position).collect();
        let spread = match (positions.iter().min(), positions.iter().max()) {
            (Some(low), Some(high)) => high - low,
            _ => 0,
        };
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        SetKey {
            unpreferred: -chosen().map(|s| s.score).sum::<i64>(),
            numa_nodes: numa.len(),
            pci_groups: pci.len(),
            pci_spread: spread,
            numa_broken: numa.intersection(&self.whole_numa).count(),
            pci_broken: pci.intersection(&self.whole_pci).count(),
            members: sorted,
        }
    }

    /// Every `k`-subset of `eligible`; the smallest key wins.
    fn exhaustive(&self, eligible: &[usize], k: usize) -> Vec<usize> {
        let mut picks: Vec<usize> = (0..k).collect();
        let mut best: Option<SetKey> = None;
        loop {
            let members: Vec<usize> = picks.iter().map(|&p| eligible[p]).collect();
            let key = self.key(&members);
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
            // The next combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| picks[i] < eligible.len() - k + i) else {
                break;
            };
            picks[i] += 1;
            for j in i + 1..k {
                picks[j] = picks[j - 1] + 1;
            }
        }
        best.map(|b| b.members).unwrap_or_default()
    }

    /// For each eligible GPU as a seed, the seed plus the `k - 1` others that score highest
    /// and sit closest to it; the smallest key among these wins. The seed with the top score
    /// yields a set with the top total score, so preferences are still honoured exactly.
    fn greedy(&self, eligible: &[usize], k: usize) -> Vec<usize> {
        let mut best: Option<SetKey> = None;
        for &seed in eligible {
            let s = &self.slots[seed];
            let mut others: Vec<usize> = eligible.iter().copied().filter(|&i| i != seed).collect();
            others.sort_by_key(|&i| {
                let o = &self.slots[i];
                let distance = match (s.pci, o.pci) {
                    (Some(a), Some(b)) => a.position().abs_diff(b.position()),
                    _ => u64::MAX,
                };
                (
                    -o.score,
                    o.numa != s.numa,
                    o.pci_group() != s.pci_group(),
                    distance,
                    i,
                )
            });
            let mut members = vec![seed];
            members.extend(others.into_iter().take(k - 1));
            let key = self.key(&members);
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
        }
        best.map(|b| b.members).unwrap_or_default()
    }
}

/// `n` choose `k`, saturating.
fn binomial(n: usize, k: usize) -> u64 {
    let k = k.min(n - k) as u64;
    let n = n as u64;
    let mut result: u64 = 1;
    for i in 0..k {
        // Exact at every step: the product of i + 1 consecutive numbers is divisible by (i+1)!.
        result = match result.checked_mul(n - i) {
            Some(product) => product / (i + 1),
            None => return u64::MAX,
        };
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::quantity::Quantity;
    use crate::spec::types::PreferredSchedulingTerm;

    const MIB: i64 = 1 << 20;

    /// The chosen GPUs' UUIDs, or the pending reason.
    type Expected<'a> = Result<&'a [&'a str], &'a str>;
    /// A machine's GPUs.
    type Machine<'a> = &'a [Candidate];

    fn host_labels() -> Labels {
        [(HOSTNAME_LABEL, "box"), (REGION_LABEL, "LAS1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn gpu(uuid: &str, name: &str, gib: i64, bus: Option<&str>, numa: Option<i32>) -> Gpu {
        Gpu {
            uuid: uuid.to_string(),
            name: name.to_string(),
            memory_bytes: gib * GIB,
            pci_bus_id: bus.map(str::to_string),
            numa_node: numa,
            memory_used_bytes: None,
            utilization_percent: None,
            temperature_celsius: None,
            power_milliwatts: None,
        }
    }

    fn machine(gpus: Vec<(Gpu, &str)>) -> Vec<Candidate> {
        let inventory = Inventory {
            gpus: gpus.iter().map(|(g, _)| g.clone()).collect(),
            source: "test".into(),
            ..Inventory::default()
        };
        let classes: BTreeMap<String, String> = gpus
            .iter()
            .map(|(g, c)| (g.uuid.clone(), c.to_string()))
            .collect();
        candidates(&inventory, &host_labels(), |g| classes[&g.uuid].clone())
    }

    /// Four GPUs of two classes: two Quadro RTX 5000 (16 GiB) on NUMA node 0, two A40
    /// (48 GiB) on NUMA node 1; one bus id in NVML's 8-digit upper-case form.
    fn four() -> Vec<Candidate> {
        machine(vec![
            (
                gpu("q1", "Quadro RTX 5000", 16, Some("0000:3b:00.0"), Some(0)),
                "Quadro_RTX_5000",
            ),
            (
                gpu(
                    "q2",
                    "Quadro RTX 5000",
                    16,
                    Some("00000000:5E:00.0"),
                    Some(0),
                ),
                "Quadro_RTX_5000",
            ),
            (
                gpu("a1", "NVIDIA A40", 48, Some("0000:86:00.0"), Some(1)),
                "A40",
            ),
            (
                gpu("a2", "NVIDIA A40", 48, Some("0000:af:00.0"), Some(1)),
                "A40",
            ),
        ])
    }

    /// An eight-GPU board laid out like a DGX A100: pairs behind one PCIe switch have
    /// neighbouring bus numbers, four per NUMA node.
    fn eight() -> Vec<Candidate> {
        let layout = [
            ("g07", "07", 0),
            ("g0f", "0f", 0),
            ("g47", "47", 0),
            ("g4e", "4e", 0),
            ("g87", "87", 1),
            ("g90", "90", 1),
            ("gb7", "b7", 1),
            ("gbd", "bd", 1),
        ];
        machine(
            layout
                .iter()
                .map(|(uuid, bus, numa)| {
                    let bus = format!("0000:{bus}:00.0");
                    let g = gpu(uuid, "NVIDIA A100-SXM4-80GB", 80, Some(&bus), Some(*numa));
                    (g, "A100_NVLINK_80GB")
                })
                .collect(),
        )
    }

    /// Three GPUs without NUMA information, two on one PCI bus.
    fn shared_bus() -> Vec<Candidate> {
        machine(vec![
            (
                gpu(
                    "x10",
                    "Tesla V100-PCIE-16GB",
                    16,
                    Some("0000:10:00.0"),
                    None,
                ),
                "Tesla_V100",
            ),
            (
                gpu(
                    "x20",
                    "Tesla V100-PCIE-16GB",
                    16,
                    Some("0000:20:00.0"),
                    None,
                ),
                "Tesla_V100",
            ),
            (
                gpu(
                    "x21",
                    "Tesla V100-PCIE-16GB",
                    16,
                    Some("0000:20:01.0"),
                    None,
                ),
                "Tesla_V100",
            ),
        ])
    }

    fn host() -> Host {
        Host {
            labels: host_labels(),
            allocatable_cpu_millis: 16_000,
            allocatable_memory_bytes: 64 * GIB,
        }
    }

    fn held(owner: &str, uuids: &[&str], cpu_millis: i64, memory_bytes: i64) -> Allocation {
        Allocation {
            owner: owner.to_string(),
            gpu_uuids: uuids.iter().map(|u| u.to_string()).collect(),
            cpu_millis,
            memory_bytes,
        }
    }

    fn gpus_held(uuids: &[&str]) -> Vec<Allocation> {
        uuids
            .iter()
            .enumerate()
            .map(|(i, u)| held(&format!("default/s{i}/s{i}-predictor-00001/0"), &[u], 0, 0))
            .collect()
    }

    fn e(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.to_string(),
            operator: operator.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn term(expressions: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: expressions,
            match_fields: vec![],
        }
    }

    fn fields(fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: fields,
        }
    }

    /// A request: `gpus` GPUs, 1 cpu and 2Gi (KServe's defaults).
    fn req(gpus: u32) -> Request {
        Request {
            gpus,
            cpu_millis: 1000,
            memory_bytes: 2 * GIB,
            placement: Placement::default(),
        }
    }

    fn required(mut request: Request, terms: Vec<NodeSelectorTerm>) -> Request {
        request.placement.required = terms;
        request
    }

    fn preferred(mut request: Request, weighted: Vec<(i32, NodeSelectorTerm)>) -> Request {
        request.placement.preferred = weighted
            .into_iter()
            .map(|(weight, preference)| PreferredSchedulingTerm { weight, preference })
            .collect();
        request
    }

    fn selector(mut request: Request, pairs: &[(&str, &str)]) -> Request {
        for (k, v) in pairs {
            request
                .placement
                .node_selector
                .insert(k.to_string(), v.to_string());
        }
        request
    }

    fn sized(mut request: Request, cpu_millis: i64, memory_bytes: i64) -> Request {
        request.cpu_millis = cpu_millis;
        request.memory_bytes = memory_bytes;
        request
    }

    /// The one table helper: places `request` and compares with `expected` (the chosen
    /// UUIDs, or the pending reason). It also checks determinism: the same inputs give the
    /// same answer, whatever the order of the candidates and of the allocations.
    fn check(
        name: &str,
        candidates: &[Candidate],
        host: &Host,
        allocations: &[Allocation],
        request: &Request,
        expected: Expected<'_>,
    ) {
        let got = place(candidates, host, allocations, request);
        let want = expected
            .map(|uuids| Decision {
                gpu_uuids: uuids.iter().map(|u| u.to_string()).collect(),
            })
            .map_err(|reason| Unschedulable {
                reason: reason.to_string(),
            });
        assert_eq!(got, want, "case {name}");
        let mut reversed = candidates.to_vec();
        reversed.reverse();
        let mut rotated = candidates.to_vec();
        rotated.rotate_left(candidates.len().min(1));
        let mut allocations_reversed = allocations.to_vec();
        allocations_reversed.reverse();
        for (order, c, a) in [
            ("again", candidates, allocations),
            ("candidates reversed", &reversed[..], allocations),
            ("candidates rotated", &rotated[..], allocations),
            (
                "allocations reversed",
                candidates,
                &allocations_reversed[..],
            ),
        ] {
            assert_eq!(place(c, host, a, request), want, "case {name}, {order}");
        }
    }

    const CLASS: &str = CLASS_LABEL;

    #[test]
    fn affinity_operators() {
        let four = four();
        let h = host();
        let none: &[Allocation] = &[];
        let cases: Vec<(&str, Request, Expected<'_>)> = vec![
            ("no constraints: lowest bus id", req(1), Ok(&["q1"])),
            (
                "In",
                required(req(1), vec![term(vec![e(CLASS, "In", &["A40"])])]),
                Ok(&["a1"]),
            ),
            (
                "In, several values",
                required(req(1), vec![term(vec![e(CLASS, "In", &["H100_PCIE", "A40"])])]),
                Ok(&["a1"]),
            ),
            (
                "In, nothing matches",
                required(req(1), vec![term(vec![e(CLASS, "In", &["RTX_A6000", "H100_PCIE"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class In [RTX_A6000 H100_PCIE]."),
            ),
            (
                "In on an absent label",
                required(req(1), vec![term(vec![e("example.com/rack", "In", &["r1"])])]),
                Err("0/4 GPUs available: 4 do not match example.com/rack In [r1]."),
            ),
            (
                "NotIn",
                required(req(1), vec![term(vec![e(CLASS, "NotIn", &["Quadro_RTX_5000"])])]),
                Ok(&["a1"]),
            ),
            (
                "NotIn matches an absent label",
                required(req(1), vec![term(vec![e("example.com/rack", "NotIn", &["r1"])])]),
                Ok(&["q1"]),
            ),
            (
                "NotIn, nothing matches",
                required(req(1), vec![term(vec![e(CLASS, "NotIn", &["A40", "Quadro_RTX_5000"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class NotIn [A40 Quadro_RTX_5000]."),
            ),
            (
                "Exists",
                required(req(1), vec![term(vec![e(MODEL_LABEL, "Exists", &[])])]),
                Ok(&["q1"]),
            ),
            (
                "Exists on an absent label",
                required(req(1), vec![term(vec![e("example.com/rack", "Exists", &[])])]),
                Err("0/4 GPUs available: 4 do not match example.com/rack Exists."),
            ),
            (
                "DoesNotExist on an absent label",
                required(req(1), vec![term(vec![e("example.com/rack", "DoesNotExist", &[])])]),
                Ok(&["q1"]),
            ),
            (
                "DoesNotExist on a present label",
                required(req(1), vec![term(vec![e(CLASS, "DoesNotExist", &[])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class DoesNotExist."),
            ),
            (
                "Gt",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Gt", &["16"])])]),
                Ok(&["a1"]),
            ),
            (
                "Gt is strict",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Gt", &["48"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/vram Gt 48."),
            ),
            (
                "Lt",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Lt", &["48"])])]),
                Ok(&["q1"]),
            ),
            (
                "Lt is strict",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Lt", &["16"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/vram Lt 16."),
            ),
            (
                "Gt and Lt on a machine label",
                required(
                    req(1),
                    vec![term(vec![e(COUNT_LABEL, "Gt", &["3"]), e(COUNT_LABEL, "Lt", &["5"])])],
                ),
                Ok(&["q1"]),
            ),
            (
                "Gt on a label that is not an integer",
                required(req(1), vec![term(vec![e(MODEL_LABEL, "Gt", &["1"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/model Gt 1."),
            ),
            (
                "Gt on an absent label",
                required(req(1), vec![term(vec![e("example.com/gen", "Gt", &["1"])])]),
                Err("0/4 GPUs available: 4 do not match example.com/gen Gt 1."),
            ),
            (
                "Gt with a value that is not an integer",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Gt", &["16Gi"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/vram Gt 16Gi."),
            ),
            (
                "Lt with two values is invalid",
                required(req(1), vec![term(vec![e(VRAM_LABEL, "Lt", &["100", "200"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/vram Lt [100 200]."),
            ),
            (
                "an unknown operator matches nothing",
                required(req(1), vec![term(vec![e(CLASS, "Equals", &["A40"])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class Equals [A40]."),
            ),
            (
                "In with no values is invalid",
                required(req(1), vec![term(vec![e(CLASS, "In", &[])])]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class In."),
            ),
            (
                "an empty term matches nothing",
                required(req(1), vec![term(vec![])]),
                Err("0/4 GPUs available: 4 do not match an empty nodeSelectorTerm."),
            ),
            (
                "host labels are matched too",
                required(req(1), vec![term(vec![e(REGION_LABEL, "In", &["LAS1"])])]),
                Ok(&["q1"]),
            ),
            (
                "matchFields metadata.name is the hostname",
                required(req(1), vec![fields(vec![e("metadata.name", "In", &["box"])])]),
                Ok(&["q1"]),
            ),
            (
                "matchFields NotIn",
                required(req(1), vec![fields(vec![e("metadata.name", "NotIn", &["box"])])]),
                Err("0/4 GPUs available: 4 do not match metadata.name NotIn [box]."),
            ),
            (
                "matchFields on another field is invalid",
                required(req(1), vec![fields(vec![e("metadata.uid", "In", &["box"])])]),
                Err("0/4 GPUs available: 4 do not match metadata.uid In [box]."),
            ),
            (
                "AND within a term: every expression must match",
                required(
                    req(1),
                    vec![term(vec![e(CLASS, "In", &["A40"]), e(REGION_LABEL, "In", &["LAS1"])])],
                ),
                Ok(&["a1"]),
            ),
            (
                "AND within a term: each GPU names its first failing expression",
                required(
                    req(1),
                    vec![term(vec![e(CLASS, "In", &["A40"]), e(REGION_LABEL, "In", &["ORD1"])])],
                ),
                Err("0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [A40], 2 do not match topology.kubernetes.io/region In [ORD1]."),
            ),
            (
                "AND across matchExpressions and matchFields",
                required(
                    req(1),
                    vec![NodeSelectorTerm {
                        match_expressions: vec![e(CLASS, "In", &["A40"])],
                        match_fields: vec![e("metadata.name", "In", &["other"])],
                    }],
                ),
                Err("0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [A40], 2 do not match metadata.name In [other]."),
            ),
            (
                "OR across terms: the second term matches",
                required(
                    req(1),
                    vec![
                        term(vec![e(CLASS, "In", &["A40"]), e(REGION_LABEL, "In", &["ORD1"])]),
                        term(vec![e(VRAM_LABEL, "Gt", &["40"])]),
                    ],
                ),
                Ok(&["a1"]),
            ),
            (
                "OR across terms: either term places a GPU",
                required(
                    req(1),
                    vec![
                        term(vec![e(CLASS, "In", &["A40"])]),
                        term(vec![e(CLASS, "In", &["Quadro_RTX_5000"])]),
                    ],
                ),
                Ok(&["q1"]),
            ),
            (
                "OR across terms: no term matches",
                required(
                    req(1),
                    vec![
                        term(vec![e(CLASS, "In", &["H100_PCIE"])]),
                        term(vec![e(VRAM_LABEL, "Gt", &["64"])]),
                    ],
                ),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class In [H100_PCIE] or gpu.nvidia.com/vram Gt 64."),
            ),
            (
                "nodeSelector",
                selector(req(1), &[(CLASS, "A40")]),
                Ok(&["a1"]),
            ),
            (
                "nodeSelector with a host label",
                selector(req(1), &[(REGION_LABEL, "LAS1"), (CLASS, "Quadro_RTX_5000")]),
                Ok(&["q1"]),
            ),
            (
                "nodeSelector mismatch (also the gke-accelerator alias)",
                selector(req(1), &[(CLASS, "Tesla_V100")]),
                Err("0/4 GPUs available: 4 do not match gpu.nvidia.com/class=Tesla_V100."),
            ),
            (
                "nodeSelector is checked before affinity",
                required(
                    selector(req(1), &[(REGION_LABEL, "ORD1")]),
                    vec![term(vec![e(CLASS, "In", &["A40"])])],
                ),
                Err("0/4 GPUs available: 4 do not match topology.kubernetes.io/region=ORD1."),
            ),
            (
                "nodeSelector and affinity together",
                required(
                    selector(req(1), &[(REGION_LABEL, "LAS1")]),
                    vec![term(vec![e(CLASS, "In", &["A40"])])],
                ),
                Ok(&["a1"]),
            ),
        ];
        for (name, request, expected) in cases {
            check(name, &four, &h, none, &request, expected);
        }
    }

    #[test]
    fn preferred_weights() {
        let four = four();
        let h = host();
        let none: &[Allocation] = &[];
        let a40 = || term(vec![e(CLASS, "In", &["A40"])]);
        let quadro = || term(vec![e(CLASS, "In", &["Quadro_RTX_5000"])]);
        let both_a40 = [held("x", &["a1", "a2"], 0, 0)];
        let second_a40 = [held("x", &["a2"], 0, 0)];
        let cases: Vec<(&str, Request, &[Allocation], Expected<'_>)> = vec![
            (
                "a preference beats the lowest bus id",
                preferred(req(1), vec![(10, a40())]),
                none,
                Ok(&["a1"]),
            ),
            (
                "the heavier preference wins",
                preferred(req(1), vec![(10, a40()), (20, quadro())]),
                none,
                Ok(&["q1"]),
            ),
            (
                "weights of matching terms add up",
                preferred(
                    req(1),
                    vec![
                        (20, a40()),
                        (10, term(vec![e(VRAM_LABEL, "Gt", &["40"])])),
                        (25, quadro()),
                    ],
                ),
                none,
                Ok(&["a1"]),
            ),
            (
                "a preference that matches nothing changes nothing",
                preferred(
                    req(1),
                    vec![(50, term(vec![e(CLASS, "In", &["H100_PCIE"])]))],
                ),
                none,
                Ok(&["q1"]),
            ),
            (
                "an empty preference matches nothing",
                preferred(req(1), vec![(50, term(vec![])), (1, a40())]),
                none,
                Ok(&["a1"]),
            ),
            (
                "required rules beat preferences",
                preferred(required(req(1), vec![quadro()]), vec![(100, a40())]),
                none,
                Ok(&["q1"]),
            ),
            (
                "a preference never places on an allocated GPU",
                preferred(req(1), vec![(100, a40())]),
                &both_a40,
                Ok(&["q1"]),
            ),
            (
                "a multi-GPU replica takes the preferred pair",
                preferred(req(2), vec![(10, a40())]),
                none,
                Ok(&["a1", "a2"]),
            ),
            (
                "a preference beats closeness",
                preferred(
                    req(2),
                    vec![(10, term(vec![e(MODEL_LABEL, "In", &["NVIDIA-A40"])]))],
                ),
                &second_a40,
                Ok(&["q2", "a1"]),
            ),
        ];
        for (name, request, allocations, expected) in cases {
            check(name, &four, &h, allocations, &request, expected);
        }
    }

    #[test]
    fn counts_and_pending_reasons() {
        let four = four();
        let h = host();
        let a40 = || required(req(1), vec![term(vec![e(CLASS, "In", &["A40"])])]);
        let two_a40 = || required(req(2), vec![term(vec![e(CLASS, "In", &["A40"])])]);
        let cases: Vec<(&str, Request, Vec<Allocation>, Expected<'_>)> = vec![
            (
                "the issue's example",
                a40(),
                gpus_held(&["a1", "a2"]),
                Err("0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [A40], 2 are allocated."),
            ),
            (
                "one A40 still free",
                a40(),
                gpus_held(&["a1"]),
                Ok(&["a2"]),
            ),
            ("two GPUs", req(2), vec![], Ok(&["q1", "q2"])),
            ("every GPU", req(4), vec![], Ok(&["q1", "q2", "a1", "a2"])),
            (
                "more GPUs than the machine has",
                req(5),
                vec![],
                Err("4/4 GPUs available, 5 requested: the machine has only 4 GPUs."),
            ),
            (
                "all allocated",
                req(1),
                gpus_held(&["q1", "q2", "a1", "a2"]),
                Err("0/4 GPUs available: 4 are allocated."),
            ),
            (
                "enough match but not enough are free together",
                two_a40(),
                gpus_held(&["a2"]),
                Err("1/4 GPUs available, 2 requested: 2 do not match gpu.nvidia.com/class In [A40], 1 is allocated."),
            ),
            (
                "fewer match than requested",
                required(req(3), vec![term(vec![e(CLASS, "In", &["A40"])])]),
                vec![],
                Err("2/4 GPUs available, 3 requested: 2 do not match gpu.nvidia.com/class In [A40]."),
            ),
            (
                "a mismatching GPU is counted as a mismatch even when allocated",
                required(req(1), vec![term(vec![e(CLASS, "In", &["Quadro_RTX_5000"])])]),
                gpus_held(&["q1", "q2", "a1"]),
                Err("0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [Quadro_RTX_5000], 2 are allocated."),
            ),
            (
                "an allocation of a GPU that is gone takes nothing",
                req(1),
                gpus_held(&["GPU-gone"]),
                Ok(&["q1"]),
            ),
            (
                "a CPU-only replica needs no GPU",
                req(0),
                gpus_held(&["q1", "q2", "a1", "a2"]),
                Ok(&[]),
            ),
        ];
        for (name, request, allocations, expected) in cases {
            check(name, &four, &h, &allocations, &request, expected);
        }
        check(
            "a machine without GPUs",
            &[],
            &h,
            &[],
            &req(1),
            Err("0/0 GPUs available: the machine has no GPUs."),
        );
        check(
            "singular counts",
            &four[1..],
            &h,
            &gpus_held(&["a1", "a2"]),
            &required(req(1), vec![term(vec![e(CLASS, "In", &["A40"])])]),
            Err("0/3 GPUs available: 1 does not match gpu.nvidia.com/class In [A40], 2 are allocated."),
        );
        let one = &four[..1];
        check(
            "a machine with one GPU",
            one,
            &h,
            &[],
            &req(2),
            Err("1/1 GPUs available, 2 requested: the machine has only 1 GPU."),
        );
    }

    #[test]
    fn topology_and_fragmentation() {
        let four = four();
        let eight = eight();
        let shared = shared_bus();
        let h = host();
        let cases: Vec<(&str, Machine<'_>, Request, Vec<Allocation>, Expected<'_>)> = vec![
            (
                "a pair on one NUMA node, the closer buses",
                &four,
                req(2),
                vec![],
                Ok(&["q1", "q2"]),
            ),
            (
                "a pair on one NUMA node over a lower bus id across nodes",
                &four,
                req(2),
                gpus_held(&["q2"]),
                Ok(&["a1", "a2"]),
            ),
            (
                "across NUMA nodes when nothing else is free",
                &four,
                req(2),
                gpus_held(&["q2", "a2"]),
                Ok(&["q1", "a1"]),
            ),
            (
                "best fit: one GPU goes where a node is already in use",
                &four,
                req(1),
                gpus_held(&["a1"]),
                Ok(&["a2"]),
            ),
            (
                "best fit on eight GPUs",
                &eight,
                req(1),
                gpus_held(&["g87"]),
                Ok(&["g90"]),
            ),
            (
                "a pair behind one switch",
                &eight,
                req(2),
                vec![],
                Ok(&["gb7", "gbd"]),
            ),
            (
                "four on one NUMA node",
                &eight,
                req(4),
                gpus_held(&["g87"]),
                Ok(&["g07", "g0f", "g47", "g4e"]),
            ),
            (
                "a pair on the NUMA node already in use, keeping the other whole",
                &eight,
                req(2),
                gpus_held(&["g07", "g0f"]),
                Ok(&["g47", "g4e"]),
            ),
            (
                "the last two free GPUs, on different NUMA nodes",
                &eight,
                req(2),
                gpus_held(&["g07", "g0f", "g47", "g87", "g90", "gb7"]),
                Ok(&["g4e", "gbd"]),
            ),
            (
                "six: the narrowest spread of bus numbers",
                &eight,
                req(6),
                vec![],
                Ok(&["g47", "g4e", "g87", "g90", "gb7", "gbd"]),
            ),
            (
                "one PCI bus over lower bus ids",
                &shared,
                req(2),
                vec![],
                Ok(&["x20", "x21"]),
            ),
            (
                "best fit on a shared bus",
                &shared,
                req(1),
                gpus_held(&["x20"]),
                Ok(&["x21"]),
            ),
        ];
        for (name, candidates, request, allocations, expected) in cases {
            check(name, candidates, &h, &allocations, &request, expected);
        }
    }

    #[test]
    fn cpu_and_memory() {
        let four = four();
        let h = host();
        let busy = |cpu, memory| {
            vec![held(
                "default/other/other-predictor-00001/0",
                &[],
                cpu,
                memory,
            )]
        };
        let cases: Vec<(&str, Request, Vec<Allocation>, Expected<'_>)> = vec![
            ("a CPU-only replica", req(0), vec![], Ok(&[])),
            ("exactly what is left", sized(req(0), 4000, 16 * GIB), busy(12_000, 48 * GIB), Ok(&[])),
            (
                "cpu exhausted",
                sized(req(0), 4001, GIB),
                busy(12_000, 0),
                Err("0/1 nodes are available: 1 Insufficient cpu."),
            ),
            (
                "memory exhausted",
                sized(req(0), 100, 16 * GIB + 1),
                busy(0, 48 * GIB),
                Err("0/1 nodes are available: 1 Insufficient memory."),
            ),
            (
                "both exhausted",
                sized(req(0), 16_001, 65 * GIB),
                vec![],
                Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
            ),
            (
                "allocations add up",
                sized(req(0), 1000, MIB),
                vec![held("a", &[], 8000, 0), held("b", &[], 7500, 0)],
                Err("0/1 nodes are available: 1 Insufficient cpu."),
            ),
            (
                "a zero request fits an overcommitted host",
                sized(req(0), 0, 0),
                busy(20_000, 100 * GIB),
                Ok(&[]),
            ),
            (
                "a CPU-only replica's affinity is matched against the host",
                required(req(0), vec![term(vec![e(REGION_LABEL, "In", &["LAS1"])])]),
                vec![],
                Ok(&[]),
            ),
            (
                "a CPU-only replica that does not match the host",
                required(req(0), vec![term(vec![e(REGION_LABEL, "In", &["ORD1"])])]),
                vec![],
                Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
            ),
            (
                "a CPU-only replica does not see GPU labels",
                selector(req(0), &[(CLASS, "A40")]),
                vec![],
                Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
            ),
            (
                "affinity is checked before resources, as kube-scheduler does",
                sized(selector(req(0), &[(REGION_LABEL, "ORD1")]), 99_000, 0),
                vec![],
                Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
            ),
            (
                "a GPU replica whose GPUs are free but cpu is not",
                sized(req(1), 2000, GIB),
                busy(15_000, 0),
                Err("0/1 nodes are available: 1 Insufficient cpu."),
            ),
            (
                "a GPU replica short of both GPUs and memory",
                sized(req(1), 1000, 32 * GIB),
                vec![held("a", &["q1", "q2", "a1", "a2"], 0, 40 * GIB)],
                Err("0/4 GPUs available: 4 are allocated. 0/1 nodes are available: 1 Insufficient memory."),
            ),
        ];
        for (name, request, allocations, expected) in cases {
            check(name, &four, &h, &allocations, &request, expected);
        }
    }

    #[test]
    fn pending_replica_placed_when_another_is_deleted() {
        let four = four();
        let h = host();
        let a40 = required(req(1), vec![term(vec![e(CLASS, "In", &["A40"])])]);
        let mut allocations = vec![
            held("default/llm/llm-predictor-00001/0", &["a1"], 1000, 2 * GIB),
            held("default/sd/sd-predictor-00001/0", &["a2"], 1000, 2 * GIB),
            held(
                "default/bert/bert-predictor-00001/0",
                &["q1"],
                1000,
                2 * GIB,
            ),
        ];
        check(
            "pending while both A40s are held",
            &four,
            &h,
            &allocations,
            &a40,
            Err("0/4 GPUs available: 2 do not match gpu.nvidia.com/class In [A40], 2 are allocated."),
        );
        allocations.retain(|a| !a.owner.starts_with("default/sd/"));
        check(
            "placed once sd is deleted",
            &four,
            &h,
            &allocations,
            &a40,
            Ok(&["a2"]),
        );

        // The same for cpu: a CPU-only replica waits for cpu to be given back.
        let mut allocations = vec![held("default/big/big-predictor-00001/0", &[], 15_500, 0)];
        let small = sized(req(0), 1000, GIB);
        check(
            "pending on cpu",
            &four,
            &h,
            &allocations,
            &small,
            Err("0/1 nodes are available: 1 Insufficient cpu."),
        );
        allocations.clear();
        check(
            "placed once big is deleted",
            &four,
            &h,
            &allocations,
            &small,
            Ok(&[]),
        );
    }

    #[test]
    fn large_machines_use_the_greedy_search() {
        // 32 GPUs, 16 requested: C(32,16) sets is far past the exhaustive limit.
        let gpus: Vec<(Gpu, &str)> = (0..32)
            .map(|i| {
                let bus = format!("0000:{:02x}:00.0", 0x10 + i * 4);
                let g = gpu(
                    &format!("g{i:02}"),
                    "NVIDIA H100 80GB HBM3",
                    80,
                    Some(&bus),
                    Some(i / 8),
                );
                (
                    g,
                    if i % 2 == 0 {
                        "H100_NVLINK_80GB"
                    } else {
                        "H100_PCIE"
                    },
                )
            })
            .collect();
        let big = machine(gpus);
        assert!(binomial(32, 16) > EXHAUSTIVE_LIMIT);
        let names = |range: &mut dyn Iterator<Item = usize>| -> Vec<String> {
            range.map(|i| format!("g{i:02}")).collect()
        };
        let want = names(&mut (0..16));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check(
            "sixteen of thirty-two",
            &big,
            &host(),
            &[],
            &req(16),
            Ok(&want),
        );
        let want = names(&mut (9..16));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check(
            "seven on the NUMA node already in use",
            &big,
            &host(),
            &gpus_held(&["g08"]),
            &req(7),
            Ok(&want),
        );
        let want = names(&mut (0..32).step_by(2));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        check(
            "a preferred class across NUMA nodes",
            &big,
            &host(),
            &[],
            &preferred(
                req(16),
                vec![(10, term(vec![e(CLASS, "In", &["H100_NVLINK_80GB"])]))],
            ),
            Ok(&want),
        );
    }

    #[test]
    fn labels() {
        let host = host_labels();
        let inventory = Inventory {
            gpus: vec![
                gpu("GPU-1", "Quadro RTX 5000", 16, None, None),
                Gpu {
                    memory_bytes: 16 * GIB - MIB,
                    ..gpu("GPU-2", "Quadro RTX 5000", 16, None, None)
                },
            ],
            source: "test".into(),
            ..Inventory::default()
        };
        let with_count = machine_labels(&host, &inventory);
        assert_eq!(with_count[COUNT_LABEL], "2");
        assert_eq!(with_count[HOSTNAME_LABEL], "box");
        let mut conflicting = host.clone();
        conflicting.insert(CLASS_LABEL.into(), "from-the-host".into());
        conflicting.insert(COUNT_LABEL.into(), "9".into());
        let labels = gpu_labels(
            &inventory.gpus[0],
            "Quadro_RTX_5000",
            &machine_labels(&conflicting, &inventory),
        );
        let expected: Labels = [
            (CLASS_LABEL, "Quadro_RTX_5000"),
            (COUNT_LABEL, "2"),
            (MODEL_LABEL, "Quadro-RTX-5000"),
            (VRAM_LABEL, "16"),
            (HOSTNAME_LABEL, "box"),
            (REGION_LABEL, "LAS1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
        let rounded = gpu_labels(&inventory.gpus[1], "Quadro_RTX_5000", &host);
        assert_eq!(rounded[VRAM_LABEL], "15", "GiB are rounded down");

        let long = "x".repeat(70);
        let cut_at_dash = format!("{}  y", "x".repeat(62));
        for (name, want) in [
            ("Quadro RTX 5000", "Quadro-RTX-5000"),
            ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
            ("NVIDIA H100 NVL MIG 3g.47gb", "NVIDIA-H100-NVL-MIG-3g.47gb"),
            ("Tesla V100-PCIE-16GB", "Tesla-V100-PCIE-16GB"),
            (" (NVIDIA) RTX/A6000 ", "NVIDIA--RTX-A6000"),
            ("", ""),
            (&long, &long[..63]),
            (&cut_at_dash, &cut_at_dash[..62]),
        ] {
            assert_eq!(label_value(name), want, "label value of {name:?}");
        }
    }

    #[test]
    fn allocatable_is_capacity_minus_reservation() {
        for (given, want) in [
            ((32_000, 128 * GIB, 2000, 8 * GIB), (30_000, 120 * GIB)),
            ((32_000, 128 * GIB, 0, 0), (32_000, 128 * GIB)),
            ((1000, GIB, 2000, 2 * GIB), (0, 0)),
            ((1000, GIB, -500, -GIB), (1000, GIB)),
        ] {
            assert_eq!(
                allocatable(given.0, given.1, given.2, given.3),
                want,
                "{given:?}"
            );
        }
    }

    #[test]
    fn requests_from_resources() {
        let resources = |requests: &[(&str, &str)], limits: &[(&str, &str)], gpus: i64| {
            let map = |pairs: &[(&str, &str)]| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
                    .collect::<BTreeMap<_, _>>()
            };
            Resources {
                requests: map(requests),
                limits: map(limits),
                cpu_request_millis: 500,
                cpu_limit_millis: 2000,
                memory_request_bytes: GIB,
                memory_limit_bytes: 4 * GIB,
                gpus,
            }
        };
        let placement = selector(req(0), &[(CLASS, "A40")]).placement;
        for (name, given, want_gpus) in [
            (
                "the limit implies the request",
                resources(&[], &[(GPU_RESOURCE, "2")], 2),
                2,
            ),
            (
                "request and limit",
                resources(&[(GPU_RESOURCE, "1")], &[(GPU_RESOURCE, "1")], 1),
                1,
            ),
            ("no GPU", resources(&[], &[], 0), 0),
            (
                "a request alone still counts",
                resources(&[(GPU_RESOURCE, "1")], &[], 0),
                1,
            ),
        ] {
            let request = Request::from_resources(&given, &placement);
            assert_eq!(
                request,
                Request {
                    gpus: want_gpus,
                    cpu_millis: 500,
                    memory_bytes: GIB,
                    placement: placement.clone(),
                },
                "{name}"
            );
        }
    }

    #[test]
    fn pci_addresses() {
        let pci = |d, b, dev, f| {
            Some(Pci {
                domain: d,
                bus: b,
                device: dev,
                function: f,
            })
        };
        for (text, want) in [
            ("0000:3b:00.0", pci(0, 0x3b, 0, 0)),
            ("00000000:3B:00.0", pci(0, 0x3b, 0, 0)),
            ("0001:af:1f.7", pci(1, 0xaf, 0x1f, 7)),
            ("3b:00.0", pci(0, 0x3b, 0, 0)),
            ("", None),
            ("0000:3b:00", None),
            ("0000:3g:00.0", None),
        ] {
            assert_eq!(Pci::parse(text), want, "{text:?}");
        }
        assert_eq!(binomial(8, 4), 70);
        assert_eq!(binomial(16, 8), 12_870);
        assert_eq!(binomial(5, 0), 1);
        assert_eq!(binomial(200, 100), u64::MAX);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn inventory() -> impl Strategy<Value = Vec<(u8, Option<i32>, u8)>> {
            // (bus, NUMA node, class index) per GPU; duplicate buses are fine.
            proptest::collection::vec((any::<u8>(), prop::option::of(0..2i32), 0..3u8), 0..10)
        }

        proptest! {
            /// Whatever the machine and the allocations, a placement hands out exactly the
            /// requested number of distinct, free, matching GPUs, and the same inputs in any
            /// order give the same answer.
            #[test]
            fn placements_are_valid_and_order_free(
                gpus in inventory(),
                held_mask in any::<u16>(),
                wanted in 1..5u32,
                class in 0..4u8,
                rotate in 0..10usize,
            ) {
                let classes = ["A40", "RTX_A6000", "Tesla_V100", "H100_PCIE"];
                let candidates = machine(
                    gpus.iter()
                        .enumerate()
                        .map(|(i, (bus, numa, c))| {
                            let bus = format!("0000:{bus:02x}:00.0");
                            (gpu(&format!("GPU-{i}"), "G", 24, Some(&bus), *numa), classes[*c as usize])
                        })
                        .collect(),
                );
                let taken: Vec<&str> = candidates
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| held_mask & (1 << i) != 0)
                    .map(|(_, c)| c.gpu.uuid.as_str())
                    .collect();
                let allocations = gpus_held(&taken);
                let want_class = classes[class as usize];
                let request = required(req(wanted), vec![term(vec![e(CLASS, "In", &[want_class])])]);
                let result = place(&candidates, &host(), &allocations, &request);
                let mut rotated = candidates.clone();
                if !rotated.is_empty() {
                    let by = rotate % rotated.len();
                    rotated.rotate_left(by);
                }
                prop_assert_eq!(&place(&rotated, &host(), &allocations, &request), &result);
                let free = candidates
                    .iter()
                    .filter(|c| c.labels[CLASS] == want_class && !taken.contains(&c.gpu.uuid.as_str()))
                    .count();
                match result {
                    Ok(decision) => {
                        prop_assert_eq!(decision.gpu_uuids.len(), wanted as usize);
                        let distinct: BTreeSet<&String> = decision.gpu_uuids.iter().collect();
                        prop_assert_eq!(distinct.len(), wanted as usize);
                        for uuid in &decision.gpu_uuids {
                            let c = candidates.iter().find(|c| &c.gpu.uuid == uuid).unwrap();
                            prop_assert_eq!(c.labels[CLASS].as_str(), want_class);
                            prop_assert!(!taken.contains(&uuid.as_str()));
                        }
                    }
                    Err(why) => {
                        prop_assert!(free < wanted as usize, "{}", why);
                        prop_assert!(why.reason.ends_with('.'));
                    }
                }
            }
        }
    }
}
