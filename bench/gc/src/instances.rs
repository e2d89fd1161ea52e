//! The workloads instantiated for each collector.
use crate::workloads::{collector_workloads, sync_churn};

fn no_collect() {}

collector_workloads!(memward, memward_gc::Gc, std::cell::RefCell, memward_gc::collect, [#[derive(memward_gc::Trace)]]);
collector_workloads!(rust_cc, rust_cc::Cc, std::cell::RefCell, rust_cc::collect_cycles, [#[derive(rust_cc::Trace, rust_cc::Finalize)]]);
// dumpster's derive does not accept fields from macro_rules (hygiene): impls below.
collector_workloads!(
    dumpster,
    ::dumpster::unsync::Gc,
    std::cell::RefCell,
    ::dumpster::unsync::collect,
    []
);
collector_workloads!(rust_gc, ::gc::Gc, ::gc::GcCell, ::gc::force_collect, [#[derive(::gc::Trace, ::gc::Finalize)]]);
collector_workloads!(
    bacon,
    bacon_rajan_cc::Cc,
    std::cell::RefCell,
    bacon_rajan_cc::collect_cycles,
    []
);
// Rc with strong back-pointers is only used for the churn (which it leaks, as in dumpster's
// harness: a floor, not a competitor).
collector_workloads!(
    rc_leaky,
    std::rc::Rc,
    std::cell::RefCell,
    super::no_collect,
    []
);

sync_churn!(memward_sync, memward_gc::sync::Gc, memward_gc::sync::collect, [#[derive(memward_gc::Trace)]]);
sync_churn!(
    dumpster_sync,
    ::dumpster::sync::Gc,
    ::dumpster::sync::collect,
    []
);
sync_churn!(arc_leaky, std::sync::Arc, super::no_collect, []);

mod bacon_traces {
    use super::bacon::{Graph, List, PTree, Tree};
    use bacon_rajan_cc::{Trace, Tracer};

    impl Trace for Tree {
        fn trace(&self, t: &mut Tracer) {
            self.l.trace(t);
            self.r.trace(t);
        }
    }
    impl Trace for PTree {
        fn trace(&self, t: &mut Tracer) {
            self.parent.trace(t);
            self.l.trace(t);
            self.r.trace(t);
        }
    }
    impl Trace for List {
        fn trace(&self, t: &mut Tracer) {
            self.next.trace(t);
            self.prev.trace(t);
        }
    }
    impl Trace for Graph {
        fn trace(&self, t: &mut Tracer) {
            self.edges.trace(t);
        }
    }
}

mod dumpster_traces {
    use ::dumpster::{TraceWith, Visitor};

    macro_rules! accept {
        ($t:ty, $($f:ident),+) => {
            // SAFETY: visits each owned pointer once, as dumpster's derive would.
            unsafe impl<V: Visitor> TraceWith<V> for $t {
                fn accept(&self, visitor: &mut V) -> Result<(), ()> {
                    $(self.$f.accept(visitor)?;)+
                    Ok(())
                }
            }
        };
    }
    accept!(super::dumpster::Tree, l, r);
    accept!(super::dumpster::PTree, parent, l, r);
    accept!(super::dumpster::List, next, prev);
    accept!(super::dumpster::Graph, edges);
    accept!(super::dumpster_sync::Node, edges);
    accept!(crate::pauses::dumpster::Node, edges);
}
