//! Which of a wake's initialisers may run at the same time, and in what order the rest wait.
//!
//! Upstream runs initialisers one after another, in file order, and most of a run is waiting
//! for config-svc and flow-svc to answer: a thousand tenants' initialisers take a thousand
//! times a few round trips. Here a wake runs several at once (`--concurrency`), without giving
//! up what file order guarantees, because every initialiser's reach is known in advance: the
//! host refuses whatever its grants do not allow. So two initialisers whose grants cannot touch
//! the same thing cannot see each other's work, and running them side by side looks, through
//! the services, like running them in file order. Those whose grants can touch the same thing
//! keep file order: a [`Plan`] starts an initialiser only once every earlier one it
//! [conflicts](Footprint::conflicts) with has finished (cleanly or not, as in sequence).
//!
//! Two initialisers conflict when one may write a config workspace the other may read or write
//! (flow-svc operations count as writes to their workspace, since flow-svc keeps its flows in
//! the workspace's config), or when both may send HTTP requests: what those reach is outside
//! the runtime's view, so any two of them are kept in order.
//!
//! An `iam` grant for a workspace counts as a write of it, and as a read of `__template__`:
//! registering workspace W writes W's entry in IAM's registry (`__workspaces__`), and
//! config-svc then fills W from the template. The registry as a whole is not counted: no guest
//! may touch it but by naming W (`iam.is-registered`, or a flow call, whose registration check
//! reads W's entry), and every such call needs a grant for W, which the write of W already
//! orders. Counting the registry would put every tenant's registration in one line.

use std::collections::{BTreeSet, HashMap};

use bootstrap_upstream::builtins::TEMPLATE_WORKSPACE;

use crate::policy::{Grants, WorkspacePattern};

/// What an initialiser's grants let it touch, as far as running it beside others goes.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    reads: Vec<WorkspacePattern>,
    writes: Vec<WorkspacePattern>,
    /// It may reach something outside (HTTP).
    outside: bool,
}

impl Footprint {
    pub fn of(grants: &Grants) -> Self {
        let mut reads = grants.config_read.clone();
        if !grants.iam.is_empty() {
            reads.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
        }
        Self {
            reads,
            writes: grants.config_write.iter().chain(&grants.flow).chain(&grants.iam).cloned().collect(),
            outside: !grants.http.is_empty(),
        }
    }

    /// Whether running `self` and `other` at once could differ from running them in turn.
    pub fn conflicts(&self, other: &Footprint) -> bool {
        let any = |mine: &[WorkspacePattern], theirs: &[WorkspacePattern]| {
            mine.iter().any(|a| theirs.iter().any(|b| a.overlaps(b)))
        };
        (self.outside && other.outside)
            || any(&self.writes, &other.writes)
            || any(&self.writes, &other.reads)
            || any(&self.reads, &other.writes)
    }

    /// Whether it names a prefix anywhere, which the exact-name index cannot follow.
    fn is_wide(&self) -> bool {
        self.reads.iter().chain(&self.writes).any(|pattern| pattern.exact().is_none())
    }
}

/// The order a wake runs its due initialisers in: each waits for the earlier ones it conflicts
/// with, and among those free to start, the earliest in the file goes first.
pub struct Plan {
    /// The initialiser (its index in the file) of each step.
    initialisers: Vec<usize>,
    /// For each step, how many earlier steps it still waits for.
    waiting_for: Vec<usize>,
    /// For each step, the later steps that wait for it.
    followers: Vec<Vec<usize>>,
    /// Steps free to start, earliest first.
    ready: BTreeSet<usize>,
    /// Step of each initialiser index, for [`Plan::finished`].
    step_of: HashMap<usize, usize>,
}

impl Plan {
    /// A plan for `due`: each initialiser's index in the file with its footprint, in file order.
    ///
    /// An initialiser naming only exact workspaces is ordered after the last earlier writer of
    /// each of them, and a writer also after the readers since: that is every conflict, up to
    /// order already implied. One naming a prefix is compared with every earlier one, and
    /// every later one with it; prefixes are rare, so this stays near linear.
    pub fn new(due: Vec<(usize, Footprint)>) -> Self {
        let count = due.len();
        let mut waits_on: Vec<Vec<usize>> = vec![Vec::new(); count];
        let mut last_writer: HashMap<&str, usize> = HashMap::new();
        let mut readers_since: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut wide: Vec<usize> = Vec::new();
        let mut last_outside: Option<usize> = None;

        for (step, (_, footprint)) in due.iter().enumerate() {
            let earlier = &mut waits_on[step];
            if footprint.is_wide() {
                earlier.extend((0..step).filter(|&other| footprint.conflicts(&due[other].1)));
            } else {
                for workspace in footprint.writes.iter().filter_map(WorkspacePattern::exact) {
                    earlier.extend(last_writer.get(workspace));
                    earlier.extend(readers_since.get(workspace).into_iter().flatten());
                }
                for workspace in footprint.reads.iter().filter_map(WorkspacePattern::exact) {
                    earlier.extend(last_writer.get(workspace));
                }
                earlier.extend(wide.iter().filter(|&&other| footprint.conflicts(&due[other].1)));
            }
            if footprint.outside {
                earlier.extend(last_outside.replace(step));
            }
            earlier.sort_unstable();
            earlier.dedup();

            if footprint.is_wide() {
                wide.push(step);
                continue;
            }
            for workspace in footprint.writes.iter().filter_map(WorkspacePattern::exact) {
                last_writer.insert(workspace, step);
                readers_since.remove(workspace);
            }
            for workspace in footprint.reads.iter().filter_map(WorkspacePattern::exact) {
                if !footprint.writes.iter().any(|written| written.exact() == Some(workspace)) {
                    readers_since.entry(workspace).or_default().push(step);
                }
            }
        }

        let mut followers = vec![Vec::new(); count];
        for (step, earlier) in waits_on.iter().enumerate() {
            for &other in earlier {
                followers[other].push(step);
            }
        }
        let waiting_for: Vec<usize> = waits_on.iter().map(Vec::len).collect();
        let ready = (0..count).filter(|&step| waiting_for[step] == 0).collect();
        let initialisers: Vec<usize> = due.iter().map(|(index, _)| *index).collect();
        let step_of = initialisers.iter().enumerate().map(|(step, &index)| (index, step)).collect();
        Self { initialisers, waiting_for, followers, ready, step_of }
    }

    /// The earliest initialiser free to start, if any; it is then taken as started.
    pub fn start_next(&mut self) -> Option<usize> {
        let step = self.ready.pop_first()?;
        Some(self.initialisers[step])
    }

    /// `index` has finished: those waiting only for it are free to start.
    pub fn finished(&mut self, index: usize) {
        let Some(&step) = self.step_of.get(&index) else { return };
        for &follower in &self.followers[step] {
            self.waiting_for[follower] -= 1;
            if self.waiting_for[follower] == 0 {
                self.ready.insert(follower);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Origin;

    fn patterns(names: &[&str]) -> Vec<WorkspacePattern> {
        names.iter().map(|name| WorkspacePattern::new(*name)).collect()
    }

    fn footprint(read: &[&str], write: &[&str]) -> Footprint {
        Footprint::of(&Grants { config_read: patterns(read), config_write: patterns(write), ..Default::default() })
    }

    /// Run `plan` to the end `width` at a time, finishing the earliest started first; returns
    /// the batches that were running together.
    fn batches(mut plan: Plan, width: usize) -> Vec<Vec<usize>> {
        let (mut batches, mut running) = (Vec::new(), Vec::new());
        loop {
            while running.len() < width {
                let Some(index) = plan.start_next() else { break };
                running.push(index);
            }
            if running.is_empty() {
                return batches;
            }
            batches.push(running.clone());
            plan.finished(running.remove(0));
        }
    }

    #[test]
    fn footprints_conflict_on_a_shared_workspace_written_by_either() {
        let template_seed = footprint(&[], &["__template__"]);
        let workspace_init = footprint(&["__template__"], &["acme"]);
        let other_init = footprint(&["__template__"], &["beta"]);
        let flow_start = Footprint::of(&Grants { flow: patterns(&["acme"]), ..Default::default() });
        assert!(template_seed.conflicts(&workspace_init), "a read of what the other writes");
        assert!(workspace_init.conflicts(&flow_start), "flow-svc writes its workspace's config");
        assert!(!workspace_init.conflicts(&other_init), "two readers of the template");
        assert!(!flow_start.conflicts(&other_init));
        let tenants = footprint(&["acme-*"], &[]);
        assert!(tenants.conflicts(&footprint(&[], &["acme-1"])));
        assert!(!tenants.conflicts(&footprint(&[], &["beta"])));

        let register = |workspace: &str| Footprint::of(&Grants { iam: patterns(&[workspace]), ..Default::default() });
        assert!(register("acme").conflicts(&flow_start), "the flow waits for the registration");
        assert!(register("acme").conflicts(&workspace_init), "and so does the workspace's config");
        assert!(register("acme").conflicts(&template_seed), "config-svc copies the template on registration");
        assert!(!register("acme").conflicts(&register("beta")), "tenants register side by side");
        assert!(!register("acme").conflicts(&other_init));

        let http =
            |origin: &str| Footprint::of(&Grants { http: vec![Origin::parse(origin).unwrap()], ..Default::default() });
        assert!(http("http://a:1").conflicts(&http("http://b:2")), "the outside world is one thing");
        assert!(!http("http://a:1").conflicts(&Footprint::default()));
    }

    #[test]
    fn tenants_run_side_by_side_each_in_file_order_after_the_template() {
        // TemplateSeed, then per tenant a WorkspaceInit and a DefaultFlowStart.
        let mut due = vec![(0, footprint(&[], &["__template__"]))];
        for tenant in 0..3 {
            let workspace = format!("tenant-{tenant}");
            due.push((1 + 2 * tenant, footprint(&["__template__"], &[&workspace])));
            let flow = Grants { flow: patterns(&[&workspace]), ..Default::default() };
            due.push((2 + 2 * tenant, Footprint::of(&flow)));
        }
        let batches = batches(Plan::new(due), 4);
        assert_eq!(batches[0], [0], "the template first, alone");
        assert_eq!(batches[1], [1, 3, 5], "then every tenant's WorkspaceInit at once");
        assert_eq!(batches[2], [3, 5, 2], "a tenant's flow once its workspace is made");
        let order: Vec<usize> = batches.iter().map(|batch| batch[0]).collect();
        assert_eq!(order, [0, 1, 3, 5, 2, 4, 6]);
    }

    #[test]
    fn one_at_a_time_is_file_order() {
        let due = (0..6).map(|index| (index, footprint(&["shared"], &[&format!("own-{}", index % 2)]))).collect();
        let order: Vec<usize> = batches(Plan::new(due), 1).iter().map(|batch| batch[0]).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_writer_waits_for_the_readers_before_it_and_readers_after_it_wait_for_it() {
        let due = vec![
            (0, footprint(&["w"], &[])),
            (1, footprint(&["w"], &[])),
            (2, footprint(&[], &["w"])),
            (3, footprint(&["w"], &[])),
            (4, footprint(&[], &["elsewhere"])),
        ];
        let mut plan = Plan::new(due);
        let started: Vec<usize> = std::iter::from_fn(|| plan.start_next()).collect();
        assert_eq!(started, [0, 1, 4], "the readers and the unrelated writer");
        plan.finished(0);
        assert_eq!(plan.start_next(), None, "the writer waits for both readers");
        plan.finished(1);
        assert_eq!(plan.start_next(), Some(2));
        assert_eq!(plan.start_next(), None, "the later reader waits for the writer");
        plan.finished(2);
        assert_eq!(plan.start_next(), Some(3));
    }

    #[test]
    fn prefixes_and_http_are_ordered_with_everything_they_may_touch() {
        let http = Grants { http: vec![Origin::parse("http://pulsar:8080").unwrap()], ..Default::default() };
        let due = vec![
            (0, footprint(&[], &["acme-1"])),
            (1, footprint(&["acme-*"], &[])),
            (2, footprint(&[], &["acme-2"])),
            (3, footprint(&[], &["beta"])),
            (4, Footprint::of(&http)),
            (5, Footprint::of(&http)),
        ];
        let mut plan = Plan::new(due);
        let started: Vec<usize> = std::iter::from_fn(|| plan.start_next()).collect();
        assert_eq!(started, [0, 3, 4]);
        plan.finished(0);
        assert_eq!(plan.start_next(), Some(1), "the prefix reader after the writer it covers");
        plan.finished(1);
        assert_eq!(plan.start_next(), Some(2), "and the next writer it covers after it");
        plan.finished(4);
        assert_eq!(plan.start_next(), Some(5), "HTTP in file order");
    }
}
