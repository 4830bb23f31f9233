//! The results: one row per scenario, the target issue 5 sets for it, the markdown table
//! and its JSON copy.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Completed operations (swaps, updates, saves) per second: higher is better.
    OpsPerSec,
    /// Mebibytes of resident memory: lower is better.
    MiB,
    /// Milliseconds of latency: lower is better.
    Millis,
}

/// The target a row must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// enduro / baseline must be at least this.
    RatioAtLeast(f64),
    /// enduro must be at most `times` × baseline + `plus` (in the row's unit).
    AtMost {
        /// Multiple of the baseline.
        times: f64,
        /// Allowance on top.
        plus: f64,
    },
}

impl Target {
    /// Whether `enduro` against `baseline` meets the target.
    pub fn met(&self, enduro: f64, baseline: f64) -> bool {
        match *self {
            Target::RatioAtLeast(min) => baseline > 0.0 && enduro / baseline >= min,
            Target::AtMost { times, plus } => enduro <= times * baseline + plus,
        }
    }

    fn describe(&self, unit: Unit) -> String {
        match *self {
            Target::RatioAtLeast(min) => format!("≥ {min:.2}×"),
            Target::AtMost { times, plus } => {
                format!("≤ {times}× + {plus} {}", unit_label(unit))
            }
        }
    }
}

/// A measured pair: enduro's figure and the baseline's, from the same run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// enduro's figure.
    pub enduro: f64,
    /// The raw baseline's figure.
    pub baseline: f64,
}

impl Measured {
    /// enduro / baseline.
    pub fn ratio(&self) -> f64 {
        if self.baseline > 0.0 {
            self.enduro / self.baseline
        } else {
            f64::NAN
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// A stable identifier, e.g. `file_small_1t`.
    pub id: String,
    /// What enduro does, e.g. "file, u64 counter, 1 thread: swap".
    pub scenario: String,
    /// What the baseline does.
    pub baseline: String,
    /// The unit of both figures.
    pub unit: Unit,
    /// The figures, or why there are none.
    pub outcome: Outcome,
    /// The target from issue 5, if it sets one for this row.
    pub target: Option<Target>,
    /// Anything a reader needs to read the row right.
    pub note: Option<String>,
}

/// Measured, or not run and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both figures, from the same run.
    Measured(Measured),
    /// Not run, with the reason.
    NotRun(String),
}

/// How a row fared against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is not met.
    Fail,
    /// There is no target for this row.
    NoTarget,
    /// The row was not run.
    NotRun,
}

impl Row {
    /// A measured row.
    pub fn measured(
        id: &str,
        scenario: &str,
        baseline: &str,
        unit: Unit,
        measured: Measured,
        target: Option<Target>,
    ) -> Row {
        Row {
            id: id.into(),
            scenario: scenario.into(),
            baseline: baseline.into(),
            unit,
            outcome: Outcome::Measured(measured),
            target,
            note: None,
        }
    }

    /// A row that was not run, and why.
    pub fn not_run(
        id: &str,
        scenario: &str,
        baseline: &str,
        unit: Unit,
        target: Option<Target>,
        reason: impl Into<String>,
    ) -> Row {
        Row {
            id: id.into(),
            scenario: scenario.into(),
            baseline: baseline.into(),
            unit,
            outcome: Outcome::NotRun(reason.into()),
            target,
            note: None,
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    /// Pass, fail, no target, or not run.
    pub fn verdict(&self) -> Verdict {
        match (&self.outcome, &self.target) {
            (Outcome::NotRun(_), _) => Verdict::NotRun,
            (Outcome::Measured(_), None) => Verdict::NoTarget,
            (Outcome::Measured(m), Some(t)) if t.met(m.enduro, m.baseline) => Verdict::Pass,
            (Outcome::Measured(_), Some(_)) => Verdict::Fail,
        }
    }
}

fn unit_label(unit: Unit) -> &'static str {
    match unit {
        Unit::OpsPerSec => "ops/s",
        Unit::MiB => "MiB",
        Unit::Millis => "ms",
    }
}

/// A figure with three significant digits and its unit: `412 ops/s`, `1.23 M ops/s`.
pub fn format_figure(value: f64, unit: Unit) -> String {
    let label = unit_label(unit);
    let (scaled, prefix) = match unit {
        Unit::OpsPerSec if value >= 1e6 => (value / 1e6, "M "),
        Unit::OpsPerSec if value >= 1e4 => (value / 1e3, "k "),
        _ => (value, ""),
    };
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$} {prefix}{label}")
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What it ran on.
    pub machine: Machine,
    /// The rows, in table order.
    pub rows: Vec<Row>,
}

impl Report {
    /// The machine description and the table, as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.machine.markdown());
        out.push_str(
            "Ratio = enduro ÷ baseline, both measured in this run. Single-thread rows: \
             Criterion's median time per operation, averaged over passes that alternate enduro \
             and baseline, as operations per second; concurrent rows: operations completed \
             over alternating rounds of the same length.\n\n",
        );
        out.push_str(
            "| scenario | enduro | raw baseline | baseline figure | ratio | target | result |\n",
        );
        out.push_str("|---|--:|---|--:|--:|---|---|\n");
        let mut notes = Vec::new();
        for row in &self.rows {
            let (enduro, baseline, ratio) = match &row.outcome {
                Outcome::Measured(m) => (
                    format_figure(m.enduro, row.unit),
                    format_figure(m.baseline, row.unit),
                    format!("{:.2}×", m.ratio()),
                ),
                Outcome::NotRun(reason) => (format!("not run: {reason}"), "—".into(), "—".into()),
            };
            let target = row
                .target
                .map_or_else(|| "—".into(), |t| t.describe(row.unit));
            let verdict = match row.verdict() {
                Verdict::Pass => "pass",
                Verdict::Fail => "**FAIL**",
                Verdict::NoTarget => "—",
                Verdict::NotRun => "not run",
            };
            let mut scenario = row.scenario.clone();
            if let Some(note) = &row.note {
                notes.push(note.clone());
                let _ = write!(scenario, " [{}]", notes.len());
            }
            let _ = writeln!(
                out,
                "| {scenario} | {enduro} | {} | {baseline} | {ratio} | {target} | {verdict} |",
                row.baseline
            );
        }
        if !notes.is_empty() {
            out.push('\n');
            for (i, note) in notes.iter().enumerate() {
                let _ = writeln!(out, "[{}] {note}  ", i + 1);
            }
        }
        out
    }

    /// The JSON copy: the report, each row with its ratio and verdict.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct JsonRow<'a> {
            #[serde(flatten)]
            row: &'a Row,
            ratio: Option<f64>,
            verdict: Verdict,
        }
        #[derive(Serialize)]
        struct JsonReport<'a> {
            machine: &'a Machine,
            rows: Vec<JsonRow<'a>>,
        }
        let rows = self
            .rows
            .iter()
            .map(|row| JsonRow {
                row,
                ratio: match &row.outcome {
                    Outcome::Measured(m) => Some(m.ratio()).filter(|r| r.is_finite()),
                    Outcome::NotRun(_) => None,
                },
                verdict: row.verdict(),
            })
            .collect();
        let report = JsonReport {
            machine: &self.machine,
            rows,
        };
        serde_json::to_string_pretty(&report).unwrap_or_default()
    }
}
