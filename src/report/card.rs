//! The dataset card (`README.md`) that makes the output folder a Hub dataset.

use super::Report;
use std::fmt::Write as _;

/// The card of a finished run.
pub(super) fn render(report: &Report) -> String {
    let mut card = String::from(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train*\ntags:\n- dpo\n- preference\n- rejudge\n---\n\n",
    );
    let _ = writeln!(card, "# Re-ranked preference pairs\n");
    let _ = writeln!(
        card,
        "Every pair of `{}` was rated by the judge `{}` with rejudge {} (template sha256 `{}`). \
         Pairs the judge preferred the other way round were swapped; ties keep their order and are \
         flagged in the `outcome` column. Every input row is kept.\n",
        report.input,
        report.judge_model,
        report.rejudge_version,
        &report.template_sha256[..report.template_sha256.len().min(12)]
    );
    let _ = writeln!(card, "```\n{}```", report.summary_table());
    card
}
