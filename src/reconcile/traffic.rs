//! Canary traffic split, pure: KServe v1beta1 (Serverless) `canaryTrafficPercent` semantics
//! (`../shared/research/kserve-spec.md` §11.1).
//!
//! KServe computes the split in two places, and this module keeps them apart so that each
//! step can be checked against its source:
//!
//! 1. [`route_spec`]: `createKnativeService` in `reconcilers/knative/ksvc_reconciler.go` writes
//!    the Knative Service's `spec.traffic` from `canaryTrafficPercent` and the component's
//!    `status.latestRolledoutRevision`.
//! 2. [`resolve`]: Knative routes a `latestRevision: true` target to the configuration's
//!    `latestReadyRevisionName`, so a revision that never became ready never gets traffic.
//! 3. [`propagate`]: `PropagateStatus` in `inference_service_status.go` reads the Knative
//!    Service's `status.traffic` back and updates `latestRolledoutRevision` /
//!    `previousRolledoutRevision`.
//!
//! KServe runs 1–3 once per reconcile and converges over the next reconciles; [`split`] runs
//! them until the bookkeeping stops changing, which is the state a user observes with
//! `kubectl get isvc` once the controller is idle. No I/O, no clock, no randomness:
//! [`pick`] takes its roll from the caller.

use serde::{Deserialize, Serialize};

use crate::reconcile::plan::TrafficTarget;

/// Tag of the latest revision's target, set only with tag routing enabled.
pub const LATEST_TAG: &str = "latest";

/// Tag of the latest rolled-out revision's target, always set.
pub const PREV_TAG: &str = "prev";

/// One revision of a component, as Knative keeps them: listed oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The revision's name (`<isvc>-<component>-00001`, ...).
    pub name: String,
    /// The revision has become ready (Knative's `latestReadyRevisionName` candidate). Knative
    /// keeps a revision as latest ready once it came up, also while it scales to zero.
    pub ready: bool,
}

/// KServe's rollout bookkeeping, kept in `status.components.<component>` (an empty string in
/// KServe is `None` here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `latestRolledoutRevision`: the last revision that got 100 % of the traffic.
    pub latest_rolledout_revision: Option<String>,
    /// `previousRolledoutRevision`: the one that was `latestRolledoutRevision` before it.
    pub previous_rolledout_revision: Option<String>,
}

/// One entry of the Knative Service's `spec.traffic` as KServe writes it: either the latest
/// ready revision (`latestRevision: true`) or a named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// `latestRevision`.
    pub latest_revision: bool,
    /// `revisionName`; `None` when `latest_revision` is set.
    pub revision_name: Option<String>,
    /// `percent`, 0..=100.
    pub percent: u32,
    /// `tag`: `latest` (tag routing only) or `prev`.
    pub tag: Option<String>,
}

/// The result of [`split`]: what `status.components.<component>` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `traffic`: Knative's resolved targets, in KServe's order (latest first, then `prev`);
    /// 0 % entries are kept, as Knative lists them. Empty while no revision is ready.
    pub traffic: Vec<TrafficTarget>,
    /// The new bookkeeping, to be kept for the next call (and across restarts).
    pub rollout: Rollout,
    /// `latestReadyRevision`: the newest revision that is ready.
    pub latest_ready_revision: Option<String>,
    /// `latestCreatedRevision`: the newest revision.
    pub latest_created_revision: Option<String>,
}

/// Computes the traffic targets and the new rollout bookkeeping of one component.
///
/// `revisions`: the component's revisions, oldest first (one per spec change, as Knative
/// creates them). `previous`: the bookkeeping from the last call. `canary_traffic_percent`:
/// the component's `canaryTrafficPercent` (validation keeps it in 0..=100; it is clamped
/// here). `enable_tag_routing`: the [`crate::spec::normalize::ENABLE_TAG_ROUTING_ANNOTATION`] is `"true"`.
///
/// - No field, or no `latestRolledoutRevision` yet: 100 % to the latest ready revision.
/// - `p` with a `latestRolledoutRevision` R: `p` % to the latest ready revision, `100 - p` % to
///   R (tag `prev`); `0` pins all traffic to R, `100` (or no field) promotes.
/// - When the latest ready revision has 100 % it becomes `latestRolledoutRevision` and the
///   former one `previousRolledoutRevision`.
/// - Rollback after a promotion (`p < 100` while the latest ready revision is already the
///   rolled-out one): `latestRolledoutRevision` reverts to `previousRolledoutRevision`, which
///   then gets `100 - p` %.
/// - A revision that is not ready gets no traffic: its share stays with the latest ready one.
pub fn split(
    revisions: &[Revision],
    previous: &Rollout,
    canary_traffic_percent: Option<i64>,
    enable_tag_routing: bool,
) -> Split {
    let latest_created = revisions.last().map(|r| r.name.clone());
    let latest_ready = revisions
        .iter()
        .rev()
        .find(|r| r.ready)
        .map(|r| r.name.clone());
    let mut rollout = previous.clone();
    // KServe converges over successive reconciles; three passes always suffice (a promotion
    // or a rollback changes the bookkeeping once, and the next pass confirms it), the bound
    // is a guard.
    let mut traffic = Vec::new();
    for _ in 0..8 {
        let spec = route_spec(canary_traffic_percent, &rollout, enable_tag_routing);
        traffic = resolve(&spec, latest_ready.as_deref());
        let next = propagate(
            &rollout,
            &traffic,
            latest_ready.as_deref(),
            latest_created.as_deref(),
        );
        if next == rollout {
            break;
        }
        rollout = next;
    }
    Split {
        traffic,
        rollout,
        latest_ready_revision: latest_ready,
        latest_created_revision: latest_created,
    }
}

/// The Knative Service's `spec.traffic` as KServe's `createKnativeService` writes it.
///
/// With `canaryTrafficPercent` p and a `latestRolledoutRevision` R:
/// `[{latestRevision: true, percent: p}, {revisionName: R, percent: 100-p, tag: prev}]`, the
/// second entry left out when p = 100. Otherwise (blue-green):
/// `[{latestRevision: true, percent: 100}]`. The latest entry has tag `latest` when tag
/// routing is enabled.
pub fn route_spec(
    canary_traffic_percent: Option<i64>,
    rollout: &Rollout,
    enable_tag_routing: bool,
) -> Vec<RouteTarget> {
    let latest_tag = enable_tag_routing.then(|| LATEST_TAG.to_string());
    match (canary_traffic_percent, &rollout.latest_rolledout_revision) {
        (Some(p), Some(last_rolledout)) => {
            let p = p.clamp(0, 100) as u32;
            let mut targets = vec![RouteTarget {
                latest_revision: true,
                revision_name: None,
                percent: p,
                tag: latest_tag,
            }];
            if p < 100 {
                targets.push(RouteTarget {
                    latest_revision: false,
                    revision_name: Some(last_rolledout.clone()),
                    percent: 100 - p,
                    tag: Some(PREV_TAG.to_string()),
                });
            }
            targets
        }
        _ => vec![RouteTarget {
            latest_revision: true,
            revision_name: None,
            percent: 100,
            tag: latest_tag,
        }],
    }
}

/// Knative's `status.traffic` for a `spec.traffic`: a `latestRevision` target goes to the
/// latest ready revision. Without a ready revision the route has no targets.
pub fn resolve(spec: &[RouteTarget], latest_ready_revision: Option<&str>) -> Vec<TrafficTarget> {
    let Some(latest_ready) = latest_ready_revision else {
        return Vec::new();
    };
    spec.iter()
        .map(|t| {
            let revision = match (&t.revision_name, t.latest_revision) {
                (Some(name), false) => name.as_str(),
                _ => latest_ready,
            };
            TrafficTarget::new(revision, t.percent, t.latest_revision, t.tag.as_deref())
        })
        .collect()
}

/// KServe's `PropagateStatus` bookkeeping, from the Knative Service's resolved traffic.
///
/// For the `latestRevision` target that points at `latestReadyRevision`:
/// - if `latestRolledoutRevision != latestReadyRevision` and the target has 100 %:
///   `previousRolledoutRevision ← latestRolledoutRevision`,
///   `latestRolledoutRevision ← latestReadyRevision`;
/// - otherwise, if `latestReadyRevision == latestCreatedRevision`, the target has < 100 %, the
///   revision's targets add up to 100 % (the split is over the same revision) and
///   `previousRolledoutRevision` is set: `latestRolledoutRevision ← previousRolledoutRevision`
///   (rollback after promotion).
pub fn propagate(
    rollout: &Rollout,
    traffic: &[TrafficTarget],
    latest_ready_revision: Option<&str>,
    latest_created_revision: Option<&str>,
) -> Rollout {
    let mut out = rollout.clone();
    let Some(latest_ready) = latest_ready_revision else {
        return out;
    };
    let revision_traffic = |name: &str| -> u32 {
        traffic
            .iter()
            .filter(|t| t.revision_name == name)
            .map(|t| t.percent)
            .sum()
    };
    for t in traffic {
        if t.revision_name != latest_ready || !t.latest_revision {
            continue;
        }
        if out.latest_rolledout_revision.as_deref() != Some(latest_ready) {
            if t.percent == 100 {
                // Track the last revision that's fully rolled out.
                out.previous_rolledout_revision = out.latest_rolledout_revision.take();
                out.latest_rolledout_revision = Some(latest_ready.to_string());
            }
        } else if Some(latest_ready) == latest_created_revision
            && t.percent < 100
            && revision_traffic(&t.revision_name) == 100
            && out.previous_rolledout_revision.is_some()
        {
            // Rolled out with 100 % and then rolled back: back to the previous one.
            out.latest_rolledout_revision = out.previous_rolledout_revision.clone();
        }
    }
    out
}

/// Weighted choice of one item: `roll` is a uniform number in `0..100` from the caller.
/// Item `i` is chosen for the rolls in `[sum of percents before i, sum through i)`, so each
/// gets exactly its `percent` of the 100 rolls and a 0 % item never. A roll past the total
/// (out of range) goes to the last item with traffic. `None` when no item has traffic.
pub fn pick<T>(items: &[T], percent: impl Fn(&T) -> u32, roll: u32) -> Option<&T> {
    let mut upper = 0u32;
    for item in items {
        upper += percent(item);
        if roll < upper {
            return Some(item);
        }
    }
    items.iter().rev().find(|item| percent(item) > 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::catalog::{parse_file, Body, LoadOptions};
    use crate::spec::types::PredictorSpec;
    use std::path::{Path, PathBuf};

    const REV1: &str = "my-model-predictor-00001";
    const REV2: &str = "my-model-predictor-00002";
    const REV3: &str = "my-model-predictor-00003";

    fn rev(name: &str, ready: bool) -> Revision {
        Revision {
            name: name.into(),
            ready,
        }
    }

    fn rollout(latest: Option<&str>, previous: Option<&str>) -> Rollout {
        Rollout {
            latest_rolledout_revision: latest.map(Into::into),
            previous_rolledout_revision: previous.map(Into::into),
        }
    }

    fn target(name: &str, percent: u32, latest: bool, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget::new(name, percent, latest, tag)
    }

    fn sum(traffic: &[TrafficTarget]) -> u32 {
        traffic.iter().map(|t| t.percent).sum()
    }

    /// A file of the shared corpus (`isvc/...`), next to the repository.
    pub(crate) fn corpus_path(name: &str) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        ["../shared/corpus", "shared/corpus"]
            .iter()
            .map(|p| root.join(p).join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("corpus file {name} next to the repository"))
    }

    fn corpus_file(step: &str) -> PathBuf {
        corpus_path(&format!(
            "isvc/kserve__kserve__docs__samples__v1beta1__rollout__{step}.yaml"
        ))
    }

    /// The predictor of a rollout sample file, read with the project's own loader.
    fn predictor(step: &str) -> PredictorSpec {
        let path = corpus_file(step);
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_file(&path.to_string_lossy(), &text, &LoadOptions::default());
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        match &parsed.documents[0].body {
            Body::InferenceService { isvc, .. } => {
                assert_eq!(isvc.metadata.name.as_deref(), Some("my-model"));
                *isvc.spec.predictor.clone().expect("a predictor")
            }
            other => panic!("{step}: not an InferenceService: {other:?}"),
        }
    }

    /// The part of a predictor that makes its Knative revision template: everything but
    /// `canaryTrafficPercent`, which KServe writes only into the Knative Service's
    /// `spec.traffic` (a route change, no new revision).
    fn template(p: &PredictorSpec) -> PredictorSpec {
        let mut t = p.clone();
        t.canary_traffic_percent = None;
        t
    }

    /// Applies the four files of KServe's rollout sample in order, then a rollback after the
    /// promotion and a second promotion.
    ///
    /// Revisions: `default` serves `flowers` (revision 1); `canary` changes the storageUri to
    /// `flowers-2` (revision 2); `pinned` and `promotion` keep `flowers-2` and only change or
    /// remove `canaryTrafficPercent`, which is not part of the revision template, so they
    /// make no new revision (as the sample's README shows: LATESTREADYREVISION stays
    /// `...-00002`). The test derives this from the files, by comparing the templates.
    #[test]
    fn rollout_sample_in_order_then_rollback_after_promotion() {
        for tag_routing in [false, true] {
            let latest_tag = tag_routing.then_some(LATEST_TAG);
            let steps = ["default", "canary", "pinned", "promotion"];
            let predictors: Vec<PredictorSpec> = steps.iter().map(|s| predictor(s)).collect();
            let percents: Vec<Option<i64>> = predictors
                .iter()
                .map(|p| p.canary_traffic_percent)
                .collect();
            assert_eq!(percents, [None, Some(10), Some(0), None]);
            assert_ne!(template(&predictors[0]), template(&predictors[1]));
            assert_eq!(template(&predictors[1]), template(&predictors[2]));
            assert_eq!(template(&predictors[2]), template(&predictors[3]));

            let mut revisions: Vec<Revision> = Vec::new();
            let mut book = Rollout::default();
            let mut last_template: Option<PredictorSpec> = None;
            let mut rev_names = [REV1, REV2, REV3].into_iter();
            // Expected after each step once its revision is ready:
            // (traffic, latestRolledoutRevision, previousRolledoutRevision).
            let expected: [(Vec<TrafficTarget>, Option<&str>, Option<&str>); 4] = [
                (vec![target(REV1, 100, true, latest_tag)], Some(REV1), None),
                (
                    vec![
                        target(REV2, 10, true, latest_tag),
                        target(REV1, 90, false, Some(PREV_TAG)),
                    ],
                    Some(REV1),
                    None,
                ),
                (
                    vec![
                        target(REV2, 0, true, latest_tag),
                        target(REV1, 100, false, Some(PREV_TAG)),
                    ],
                    Some(REV1),
                    None,
                ),
                (
                    vec![target(REV2, 100, true, latest_tag)],
                    Some(REV2),
                    Some(REV1),
                ),
            ];
            for ((step, p), (traffic, latest, previous)) in
                steps.iter().zip(&predictors).zip(expected)
            {
                let t = template(p);
                if last_template.as_ref() != Some(&t) {
                    // A new revision appears, not ready yet: traffic stays where it was.
                    revisions.push(rev(rev_names.next().unwrap(), false));
                    let before = split(&revisions, &book, p.canary_traffic_percent, tag_routing);
                    assert_eq!(before.rollout, book, "{step}: not ready");
                    assert!(
                        before
                            .traffic
                            .iter()
                            .all(|x| x.revision_name != revisions.last().unwrap().name),
                        "{step}: a revision that is not ready got traffic: {:?}",
                        before.traffic
                    );
                    let sum_expected = if revisions.len() == 1 { 0 } else { 100 };
                    assert_eq!(sum(&before.traffic), sum_expected, "{step}");
                    revisions.last_mut().unwrap().ready = true;
                    last_template = Some(t);
                }
                let s = split(&revisions, &book, p.canary_traffic_percent, tag_routing);
                assert_eq!(s.traffic, traffic, "{step}");
                assert_eq!(s.rollout, rollout(latest, previous), "{step}");
                assert_eq!(
                    s.latest_ready_revision.as_deref(),
                    revisions.last().map(|r| r.name.as_str())
                );
                book = s.rollout;
            }
            assert_eq!(revisions.len(), 2);

            // Rollback after promotion: `canaryTrafficPercent: 0` on the promoted spec. The
            // latest ready revision is the rolled-out one, so latestRolledoutRevision
            // reverts to previousRolledoutRevision and that one gets the 100 %.
            let s = split(&revisions, &book, Some(0), tag_routing);
            assert_eq!(
                s.traffic,
                [
                    target(REV2, 0, true, latest_tag),
                    target(REV1, 100, false, Some(PREV_TAG)),
                ]
            );
            assert_eq!(s.rollout, rollout(Some(REV1), Some(REV1)));
            book = s.rollout;
            // Stable: the same input gives the same answer.
            assert_eq!(split(&revisions, &book, Some(0), tag_routing).rollout, book);
            // A partial rollback after promotion: 10 % stays on the new one.
            let s = split(
                &revisions,
                &rollout(Some(REV2), Some(REV1)),
                Some(10),
                tag_routing,
            );
            assert_eq!(
                s.traffic,
                [
                    target(REV2, 10, true, latest_tag),
                    target(REV1, 90, false, Some(PREV_TAG)),
                ]
            );
            assert_eq!(s.rollout, rollout(Some(REV1), Some(REV1)));
            // Promote again: remove the field.
            let s = split(&revisions, &book, None, tag_routing);
            assert_eq!(s.traffic, [target(REV2, 100, true, latest_tag)]);
            assert_eq!(s.rollout, rollout(Some(REV2), Some(REV1)));
        }
    }

    #[test]
    fn a_revision_that_is_not_ready_gets_no_traffic() {
        let book = rollout(Some(REV1), None);
        for canary in [None, Some(0), Some(10), Some(50), Some(100)] {
            let revs = [rev(REV1, true), rev(REV2, false)];
            let s = split(&revs, &book, canary, false);
            assert!(
                s.traffic.iter().all(|t| t.revision_name == REV1),
                "{canary:?}: {:?}",
                s.traffic
            );
            assert_eq!(sum(&s.traffic), 100);
            assert_eq!(
                s.rollout, book,
                "{canary:?}: the bookkeeping waits for the revision"
            );
            assert_eq!(s.latest_ready_revision.as_deref(), Some(REV1));
            assert_eq!(s.latest_created_revision.as_deref(), Some(REV2));
        }
        // Rolled back after promotion while a newer revision is still coming up: the rollback
        // waits (latestReadyRevision != latestCreatedRevision), as KServe.
        let promoted = rollout(Some(REV2), Some(REV1));
        let revs = [rev(REV1, true), rev(REV2, true), rev(REV3, false)];
        let s = split(&revs, &promoted, Some(0), false);
        assert_eq!(
            s.traffic,
            [
                target(REV2, 0, true, None),
                target(REV2, 100, false, Some(PREV_TAG))
            ]
        );
        assert_eq!(s.rollout, promoted);
        // A failed revision followed by a ready one: the ready one is the latest.
        let revs = [rev(REV1, true), rev(REV2, false), rev(REV3, true)];
        let s = split(&revs, &book, None, false);
        assert_eq!(s.traffic, [target(REV3, 100, true, None)]);
        assert_eq!(s.rollout, rollout(Some(REV3), Some(REV1)));
        // Nothing ready at all: no targets, no bookkeeping.
        let s = split(&[rev(REV1, false)], &Rollout::default(), None, false);
        assert!(s.traffic.is_empty());
        assert_eq!(s.rollout, Rollout::default());
        assert_eq!(pick(&s.traffic, |t| t.percent, 0), None);
    }

    #[test]
    fn canary_before_any_rollout_is_blue_green() {
        // No latestRolledoutRevision yet: KServe's first pass ignores canaryTrafficPercent
        // and sends 100 % to the latest ready revision, which becomes rolled out; the next
        // pass splits over that same revision (all traffic still on it).
        let first = route_spec(Some(10), &Rollout::default(), true);
        assert_eq!(
            first,
            [RouteTarget {
                latest_revision: true,
                revision_name: None,
                percent: 100,
                tag: Some(LATEST_TAG.into()),
            }]
        );
        for (canary, p) in [(Some(0), 0), (Some(10), 10)] {
            let s = split(&[rev(REV1, true)], &Rollout::default(), canary, true);
            assert_eq!(
                s.traffic,
                [
                    target(REV1, p, true, Some(LATEST_TAG)),
                    target(REV1, 100 - p, false, Some(PREV_TAG)),
                ]
            );
            assert_eq!(s.rollout, rollout(Some(REV1), None));
        }
        let s = split(&[rev(REV1, true)], &Rollout::default(), Some(100), true);
        assert_eq!(s.traffic, [target(REV1, 100, true, Some(LATEST_TAG))]);
        assert_eq!(s.rollout, rollout(Some(REV1), None));
    }

    #[test]
    fn canary_100_promotes_with_one_target() {
        let revs = [rev(REV1, true), rev(REV2, true)];
        let s = split(&revs, &rollout(Some(REV1), None), Some(100), false);
        assert_eq!(s.traffic, [target(REV2, 100, true, None)]);
        assert_eq!(s.rollout, rollout(Some(REV2), Some(REV1)));
    }

    #[test]
    fn canary_on_the_only_revision_keeps_it_rolled_out() {
        // No previousRolledoutRevision: KServe does not revert to an empty one.
        let book = rollout(Some(REV1), None);
        let s = split(&[rev(REV1, true)], &book, Some(10), false);
        assert_eq!(
            s.traffic,
            [
                target(REV1, 10, true, None),
                target(REV1, 90, false, Some(PREV_TAG))
            ]
        );
        assert_eq!(s.rollout, book);
    }

    #[test]
    fn percentages_always_sum_to_100() {
        let histories: Vec<Vec<Revision>> = vec![
            vec![rev(REV1, true)],
            vec![rev(REV1, true), rev(REV2, false)],
            vec![rev(REV1, true), rev(REV2, true)],
            vec![rev(REV1, true), rev(REV2, true), rev(REV3, false)],
            vec![rev(REV1, true), rev(REV2, false), rev(REV3, true)],
        ];
        let books = [
            Rollout::default(),
            rollout(Some(REV1), None),
            rollout(Some(REV2), Some(REV1)),
            rollout(Some(REV1), Some(REV1)),
            rollout(Some(REV3), Some(REV2)),
        ];
        let canaries = std::iter::once(None).chain((-5..=105).map(Some));
        for canary in canaries {
            for revs in &histories {
                for book in books.iter().filter(|b| {
                    [&b.latest_rolledout_revision, &b.previous_rolledout_revision]
                        .into_iter()
                        .flatten()
                        .all(|n| revs.iter().any(|r| &r.name == n))
                }) {
                    for tags in [false, true] {
                        let s = split(revs, book, canary, tags);
                        assert_eq!(sum(&s.traffic), 100, "{canary:?} {revs:?} {book:?}");
                        assert!(s
                            .traffic
                            .iter()
                            .all(|t| revs.iter().any(|r| r.name == t.revision_name)));
                        // The latest entry always goes to the latest ready revision.
                        assert_eq!(
                            s.traffic[0].revision_name,
                            s.latest_ready_revision.clone().unwrap()
                        );
                        assert!(s.traffic[0].latest_revision);
                        assert_eq!(s.traffic[0].tag.as_deref(), tags.then_some(LATEST_TAG));
                        assert!(s.traffic[1..]
                            .iter()
                            .all(|t| t.tag.as_deref() == Some(PREV_TAG)));
                        // A fixed point: applying it again changes nothing.
                        assert_eq!(split(revs, &s.rollout, canary, tags), s);
                    }
                }
            }
        }
    }

    #[test]
    fn pick_distributes_as_the_percents_say() {
        let cases: Vec<Vec<TrafficTarget>> = vec![
            vec![
                target(REV2, 10, true, None),
                target(REV1, 90, false, Some(PREV_TAG)),
            ],
            vec![
                target(REV2, 0, true, None),
                target(REV1, 100, false, Some(PREV_TAG)),
            ],
            vec![target(REV2, 100, true, None)],
            vec![
                target(REV1, 37, true, None),
                target(REV1, 63, false, Some(PREV_TAG)),
            ],
            vec![
                target(REV3, 1, true, None),
                target(REV2, 0, false, None),
                target(REV1, 99, false, None),
            ],
        ];
        for targets in &cases {
            let mut counts = vec![0u32; targets.len()];
            for roll in 0..100 {
                let chosen = pick(targets, |t| t.percent, roll).unwrap();
                let i = targets
                    .iter()
                    .position(|t| std::ptr::eq(t, chosen))
                    .unwrap();
                counts[i] += 1;
            }
            let percents: Vec<u32> = targets.iter().map(|t| t.percent).collect();
            assert_eq!(counts, percents, "{targets:?}");
            // Out of range rolls still land on a target with traffic.
            assert!(pick(targets, |t| t.percent, 100).unwrap().percent > 0);
            assert!(pick(targets, |t| t.percent, u32::MAX).unwrap().percent > 0);
        }
        assert_eq!(pick(&[], |t: &TrafficTarget| t.percent, 5), None);
        assert_eq!(pick(&[target(REV1, 0, true, None)], |t| t.percent, 5), None);
    }
}
