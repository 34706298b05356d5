"""The claims table decides each claim from the curves: verdicts follow the numbers, and missing runs are not guessed."""

from __future__ import annotations

import pandas as pd

from resnet_repro.report.claims import FAILS, HOLDS, NOT_MEASURED, check_claims, claims_markdown

STEPS = 400


def curves(
    errors: dict[tuple[str, int], tuple[float, float]], steps: int = STEPS, status: str = "done"
) -> pd.DataFrame:
    """Flat curves: (arch, depth) -> (training error, test error), two seeds 1 point apart."""
    rows = []
    for (arch, depth), (train, test) in errors.items():
        for seed in (0, 1):
            for step in range(100, steps + 1, 100):
                for split, error in (("train", train), ("test", test)):
                    rows.append(
                        {
                            "arch": arch,
                            "depth": depth,
                            "seed": seed,
                            "steps": steps,
                            "status": status,
                            "step": step,
                            "split": split,
                            "error": error + 0.01 * seed,
                        }
                    )
    return pd.DataFrame(rows)


def figure7(stds: dict[tuple[str, int], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"arch": a, "depth": d, "seed": 0, "layer": i, "std": s} for (a, d), s in stds.items() for i in range(1, 4)]
    )


PAPERLIKE = {
    ("plain", 20): (0.05, 0.10),
    ("plain", 56): (0.08, 0.13),
    ("resnet", 20): (0.04, 0.09),
    ("resnet", 56): (0.02, 0.07),
}


def verdicts(table: pd.DataFrame) -> list[str]:
    return list(table.verdict)


def test_paperlike_runs_hold_every_claim_but_table6_which_needs_the_full_schedule():
    table = check_claims(
        curves(PAPERLIKE), figure7({("plain", 20): 1.0, ("resnet", 20): 0.8, ("plain", 56): 2.0, ("resnet", 56): 0.7})
    )
    assert verdicts(table) == [HOLDS] * 5 + [NOT_MEASURED, HOLDS]
    assert "plain-56 8.50% vs plain-20 5.50% (+3.00 points)" in table.evidence[0]  # seeds 0 and 1 averaged
    text = claims_markdown(table, curves(PAPERLIKE))
    assert "400 iterations (0.6% of the paper's 64,000)" in text


def test_verdicts_follow_the_numbers():
    flipped = dict(PAPERLIKE)
    flipped[("plain", 56)] = (0.03, 0.08)  # deep plain now trains better: no degradation
    flipped[("resnet", 56)] = (0.05, 0.11)  # deeper ResNet now worse
    table = check_claims(curves(flipped), figure7({("plain", 56): 0.5, ("resnet", 56): 0.9}))
    assert verdicts(table)[:2] == [FAILS, FAILS]
    assert verdicts(table)[4] == FAILS
    assert verdicts(table)[6] == FAILS


def test_missing_or_unfinished_runs_are_not_measured():
    only_plain = {k: v for k, v in PAPERLIKE.items() if k[0] == "plain"}
    table = check_claims(curves(only_plain))
    assert verdicts(table)[:2] == [HOLDS, HOLDS]
    assert verdicts(table)[2:] == [NOT_MEASURED] * 5
    assert set(verdicts(check_claims(curves(PAPERLIKE, status="running")))) == {NOT_MEASURED}


def test_full_schedule_runs_are_compared_with_table6():
    table = check_claims(curves(PAPERLIKE, steps=64000))
    assert table.verdict[5] == "compared"
    assert "ResNet-20 9.50% vs 8.75% (+0.75 points)" in table.evidence[5]
    assert "ResNet-56 7.50% vs 6.97% (+0.53 points)" in table.evidence[5]


def test_only_the_last_quarter_counts():
    data = curves(PAPERLIKE)
    early = (data.arch == "plain") & (data.depth == 56) & (data.step <= 0.75 * STEPS) & (data.split == "train")
    data.loc[early, "error"] = 0.0  # early rows of plain-56 do not decide claim 1
    assert check_claims(data).verdict[0] == HOLDS


def test_option_b_runs_are_not_the_papers_nets_and_are_left_out():
    data = curves(PAPERLIKE).assign(shortcut=lambda d: d.arch.map({"plain": "none", "resnet": "A"}))
    worse = curves({("resnet", 56): (0.5, 0.5)}).assign(shortcut="B")  # a bad option-B ResNet-56 changes nothing
    assert check_claims(pd.concat([data, worse])).equals(check_claims(data))


def test_the_readmes_claims_table_says_what_the_committed_report_computed():
    """The README quotes results/tenth's claims table: each row's verdict must be the report's."""
    from conftest import REPO

    committed = pd.read_csv(REPO / "results" / "tenth" / "claims.csv").set_index("number").verdict
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### What the paper claims, and what these runs show") :]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()][:7]
    quoted = {int(cells[1]): cells[4].strip().strip("*") for cells in rows}
    assert quoted == committed.to_dict()
