//! The path from the root to the value being serialized: a linked list on the stack,
//! rendered (`[0].values[1]`) only when a value is refused.

/// One step of the path, pointing back at the step before it.
#[derive(Clone, Copy)]
pub(super) struct Node<'p> {
    pub(super) parent: Option<&'p Node<'p>>,
    pub(super) step: Step,
}

#[derive(Clone, Copy)]
pub(super) enum Step {
    /// A struct field: `.name`.
    Field(&'static str),
    /// An element of a sequence or tuple: `[3]`.
    Index(usize),
    /// The key or value of the i-th map entry (keys can be any type, so not shown).
    Entry(usize),
    /// An enum variant: `::Name`.
    Variant(&'static str),
}

/// Paths longer than this show their first and last steps only.
const SHOWN_STEPS: usize = 24;
const FIRST_STEPS: usize = 16;

/// Renders a path for an error message; the root is "the value itself".
pub(super) fn render(path: Option<&Node<'_>>) -> String {
    let mut steps = Vec::new();
    let mut at = path;
    while let Some(node) = at {
        steps.push(node.step);
        at = node.parent;
    }
    if steps.is_empty() {
        return "the value itself".to_owned();
    }
    steps.reverse();
    let mut out = String::new();
    if steps.len() > SHOWN_STEPS {
        let last = SHOWN_STEPS - FIRST_STEPS;
        let hidden = steps.len() - SHOWN_STEPS;
        steps[..FIRST_STEPS].iter().for_each(|s| push(&mut out, s));
        out.push_str(&format!("…({hidden} more steps)…"));
        steps[steps.len() - last..]
            .iter()
            .for_each(|s| push(&mut out, s));
    } else {
        steps.iter().for_each(|s| push(&mut out, s));
    }
    out
}

fn push(out: &mut String, step: &Step) {
    match step {
        Step::Field(name) => out.push_str(&format!(".{name}")),
        Step::Index(i) => out.push_str(&format!("[{i}]")),
        Step::Entry(i) => out.push_str(&format!("{{value of entry #{i}}}")),
        Step::Variant(name) => out.push_str(&format!("::{name}")),
    }
}
