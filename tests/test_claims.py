"""The claims table decides each claim from the curves: verdicts follow the numbers, and missing runs are not guessed."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from resnet_repro.report.claims import (
    FAILS,
    HOLDS,
    NOT_MEASURED,
    WITHIN_NOISE,
    check_claims,
    claims_markdown,
    difference_noise,
)

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


def figure7(stds: dict[tuple[str, int], float], layers: int = 19) -> pd.DataFrame:
    """Layer stds rising slowly with the layer index from `std` (one seed)."""
    return pd.DataFrame(
        [
            {"arch": a, "depth": d, "seed": 0, "layer": i, "std": s * (1 + 0.01 * i)}
            for (a, d), s in stds.items()
            for i in range(1, layers + 1)
        ]
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
    assert verdicts(table) == [HOLDS] * 5 + [NOT_MEASURED, HOLDS, HOLDS] + ["measured (beyond noise)"] * 2
    assert "plain-56 8.50% vs plain-20 5.50% (+3.00 points)" in table.evidence[0]  # seeds 0 and 1 averaged
    assert table.margin[0] == pytest.approx(3.0)
    # two seeds: the seed noise is the public re-run's, and says so; the test-set part is binomial (no predictions)
    assert "external" in table.noise_basis[1] and "binomial" in table.noise_basis[1]
    text = claims_markdown(table, curves(PAPERLIKE))
    assert "400 iterations (0.6% of the paper's 64,000)" in text


def test_verdicts_follow_the_numbers():
    flipped = dict(PAPERLIKE)
    flipped[("plain", 56)] = (0.03, 0.08)  # deep plain now trains better: no degradation
    flipped[("resnet", 56)] = (0.05, 0.11)  # deeper ResNet now worse
    table = check_claims(curves(flipped), figure7({("plain", 56): 0.5, ("resnet", 56): 0.9}))
    assert verdicts(table)[:2] == [FAILS, FAILS]
    assert verdicts(table)[4] == FAILS
    assert verdicts(table)[6].startswith(FAILS)  # plain-56 below ResNet-56 in every layer


def test_missing_or_unfinished_runs_are_not_measured():
    only_plain = {k: v for k, v in PAPERLIKE.items() if k[0] == "plain"}
    table = check_claims(curves(only_plain))
    assert verdicts(table)[:2] == [HOLDS, HOLDS]
    assert verdicts(table)[2:] == [NOT_MEASURED] * 6
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


def paired(curves_: pd.DataFrame, wrong: dict[tuple[str, int], range], n: int = 10_000) -> dict:
    """Run names on the curves, and predictions that get exactly the images in `wrong` wrong."""
    predictions = {}
    for (arch, depth), images in wrong.items():
        labels = [0] * n
        predictions[f"{arch}-{depth}/seed0"] = ([1 if i in images else 0 for i in range(n)], labels)
    return predictions


def one_seed(errors):
    data = curves(errors)
    data = data[data.seed == 0].copy()
    data["run"] = data.arch + "-" + data.depth.astype(str) + "/seed0"
    return data


def test_a_margin_within_twice_its_noise_is_within_noise_and_pairing_by_image_can_resolve_it():
    # plain-56 1 point above plain-20 in test error: 2.0 sigma of binomial test-set noise and external seed noise
    data = one_seed({("plain", 20): (0.05, 0.10), ("plain", 56): (0.08, 0.11)})
    table = check_claims(data)
    assert table.verdict[1] == WITHIN_NOISE
    assert table.noise[1] == pytest.approx(0.50, abs=0.01) and "binomial" in table.noise_basis[1]
    assert table.seeds[1] == "one seed each: a claim made on one seed"
    # the same errors, the same images wrong but 100 more for plain-56: paired, the test-set part is tiny
    predictions = paired(data, {("plain", 20): range(1000), ("plain", 56): range(1100)})
    table = check_claims(data, predictions=predictions)
    assert "paired by image over 10,000" in table.noise_basis[1]
    assert table.noise[1] == pytest.approx((0.13**2 + 0.22**2 + 0.1**2) ** 0.5, abs=0.01)
    assert table.verdict[1] == HOLDS
    # disjoint mistakes pair to more noise than the binomial's, not less
    disjoint = paired(data, {("plain", 20): range(1000), ("plain", 56): range(1000, 2100)})
    assert difference_noise(data, ("plain", 56), ("plain", 20), "test", "final", disjoint).std > table.noise[1]


def test_three_seeds_give_the_seed_noise_measured_here_and_it_is_used_for_the_others():
    rows = []
    for (arch, depth), (train, test) in {("plain", 20): (0.05, 0.10), ("resnet", 20): (0.04, 0.09)}.items():
        for seed, offset in enumerate((0.0, 0.02, 0.04)):  # a 2-point spread between seeds
            rows += [
                {
                    "arch": arch,
                    "depth": depth,
                    "seed": seed,
                    "steps": STEPS,
                    "status": "done",
                    "step": step,
                    "split": split,
                    "error": error + offset,
                }  # fmt: skip
                for step in range(100, STEPS + 1, 100)
                for split, error in (("train", train), ("test", test))
            ]
    three = pd.DataFrame(rows)
    deep = curves({("plain", 56): (0.20, 0.25)})
    deep = deep[deep.seed == 0]
    table = check_claims(pd.concat([three, deep]))
    # plain-20 vs ResNet-20: 1 point apart, seed std 2 points over 3 seeds each: within noise, whatever else
    assert "measured here, 3 seeds" in table.noise_basis[9] and table.verdict[9] == "measured (within noise)"
    assert "ResNet-20 1.00 points below plain-20" in table.evidence[9]
    assert table.seeds[9] == "plain-20 3 seeds, ResNet-20 3 seeds"
    # plain-56 has one seed: the std measured on the 20-layer nets of the same schedule is assumed for it
    assert "plain-56 2.00 (measured here on plain-20 and ResNet-20, assumed)" in table.noise_basis[0]
    assert "external" not in table.noise_basis[0]


def test_at_20_layers_the_shortcut_is_a_measurement_not_the_papers_claim():
    data = one_seed({("plain", 20): (0.0216, 0.1383), ("resnet", 20): (0.0138, 0.1250)})
    table = check_claims(data).set_index("number")
    assert table.verdict[3] == table.verdict[4] == NOT_MEASURED  # "the shortcut fixes it" is about deep nets
    assert "about deep nets" in table.evidence[4]
    assert table.evidence[10].startswith("ResNet-20 1.33 points below plain-20")
    assert table.verdict[10] == "measured (beyond noise)"  # 1.33 points against 0.52 (binomial + external)
    assert not any("fixes" in c for c in table.claim[8:])
    # a margin on a rounding edge (19.29 - 17.305 = 1.985) is written as one number in both places of its row
    data = one_seed({("plain", 20): (0.0216, 0.1929), ("resnet", 20): (0.0138, 0.17305)})
    evidence = check_claims(data).set_index("number").evidence[10]
    shown = re.findall(r"\d+\.\d+ points", evidence)
    assert len(shown) == 2 and len(set(shown)) == 1, evidence


def test_figure7_is_judged_over_layers_not_by_a_mean_one_layer_can_carry():
    stds = figure7({("plain", 20): 1.0, ("resnet", 20): 0.8, ("resnet", 56): 0.7})
    one_layer = (stds.arch == "resnet") & (stds.depth == 20) & (stds.layer == 1)
    stds.loc[one_layer, "std"] = 100.0  # one layer lifts ResNet-20's mean above plain-20's
    assert stds[(stds.arch == "resnet") & (stds.depth == 20)]["std"].mean() > 1.1  # plain-20: about 1.1
    table = check_claims(curves(PAPERLIKE), stds)
    assert table.verdict[6] == HOLDS, table.evidence[6]  # below in 18 of 19 layers, and in the median
    assert "in 18 of 19 layers in layer order, 18 of 19 at equal sorted rank" in table.evidence[6]
    assert table.verdict[7] == HOLDS  # ResNet-56 below ResNet-20 (its first 19 layers)
    # half the layers below, half above: neither way
    mixed = figure7({("plain", 20): 1.0, ("resnet", 20): 1.0})
    mixed.loc[(mixed.arch == "resnet") & (mixed.layer % 2 == 0), "std"] *= 0.9
    mixed.loc[(mixed.arch == "resnet") & (mixed.layer % 2 == 1), "std"] *= 1.1
    assert check_claims(curves(PAPERLIKE), mixed).verdict[6] == WITHIN_NOISE
    # deeper ResNets above the shallower in every layer: the second claim fails
    deeper_worse = figure7({("resnet", 20): 0.8, ("resnet", 56): 1.5})
    assert check_claims(curves(PAPERLIKE), deeper_worse).verdict[7] == FAILS


def test_the_markdown_states_margin_noise_and_seeds_beside_every_verdict():
    table = check_claims(one_seed(PAPERLIKE))
    text = claims_markdown(table, one_seed(PAPERLIKE))
    assert "| margin | noise (what it is) | seeds | verdict |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "| +3.00 |" in row and "seed" in row and "one seed each" in row
    assert "beyond twice its noise" in text


def test_the_readmes_claims_table_says_what_the_committed_report_computed():
    """The README quotes results/tenth's claims table: each row's verdict must be the report's."""
    from conftest import REPO

    committed = pd.read_csv(REPO / "results" / "tenth" / "claims.csv").set_index("number").verdict
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### What the paper claims, and what these runs show") :]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()][:8]
    quoted = {int(cells[1]): cells[-2].strip().strip("*") for cells in rows}  # the verdict: the last column
    assert len(quoted) == 8 and quoted == {number: committed[number] for number in quoted}


def test_the_readme_and_notebook_lead_with_figure1_at_full_schedule_once_plain56_has_finished():
    """Issue 21, item 6: once results/paper holds a finished plain-56 (with plain-20, Figure 1 at the paper's 64,000
    iterations), the README's first figure and the notebook's first evidence are that report's; until then, neither
    leads with a Figure 1 that lacks its deep net. Fails the day the run lands and the lead has not moved."""
    import json

    from conftest import REPO

    paper = REPO / "results" / "paper"
    statuses = [json.loads(f.read_text()).get("state") for f in paper.glob("runs/plain-56/seed*/status.json")]
    full_figure1 = "done" in statuses
    readme = (REPO / "README.md").read_text()
    lead = re.search(r"!\[[^\]]*\]\(([^)]+)\)", readme).group(1)
    notebook = json.loads((REPO / "notebooks" / "degradation.ipynb").read_text())
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    first_evidence = next(m.group(1) for src in code if (m := re.search(r'"results" / "(\w+)"', src)))
    assert (lead == "results/paper/figure1.png") == full_figure1, lead
    assert (first_evidence == "paper") == full_figure1, first_evidence


def test_the_readmes_full_schedule_table_quotes_the_committed_runs():
    """Every README table row "| <net> | 64,000 | <training error> | <test error> |" quotes results/paper's final
    errors as its curves have them, and so will the Figure 1 table when plain-56 joins it (issue 21, item 6)."""
    from conftest import REPO

    from resnet_repro.models import Net

    curves = pd.read_csv(REPO / "results" / "paper" / "curves.csv")
    final = curves[curves.step == curves.steps].groupby(["arch", "depth", "split"]).error.mean()  # over seeds
    names = {Net.of(arch, depth).display_name: (arch, depth) for arch, depth, _ in final.index}
    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| ([\w-]+) \| 64,000 \| ([\d.]+)% \| \**([\d.]+)%\** \|", readme, re.MULTILINE)
    assert rows, "no full-schedule table in the README"
    for name, train, test in rows:
        assert name in names, f"README quotes {name} at 64,000 iterations; results/paper has no such run"
        arch, depth = names[name]
        assert (train, test) == (f"{100 * final[arch, depth, 'train']:.2f}", f"{100 * final[arch, depth, 'test']:.2f}")
