"""Label budgets (notebook 09): nested, stratified, a defect label per category where the budget allows, seeded."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers.data.budgets import budget_table, nested_budgets


def _train(categories: int = 5, good: int = 20, defective: int = 8) -> pd.DataFrame:
    rows = [{"path": f"{c}/{kind}/{i}.png", "category": f"cat{c}", "label": int(kind == "bad")}
            for c in range(categories) for kind, n in (("good", good), ("bad", defective)) for i in range(n)]
    return pd.DataFrame(rows)


def test_budgets_are_nested_stratified_and_complete():
    train = _train()
    fractions = (0.05, 0.1, 0.25, 0.5, 1.0)
    b = nested_budgets(train, fractions, seed=7)
    assert list(b) == list(fractions)
    for small, large in zip(fractions, fractions[1:]):
        assert set(b[small]["path"]) <= set(b[large]["path"]), (small, large)   # nested
    assert set(b[1.0]["path"]) == set(train["path"])
    for f, subset in b.items():
        counts = subset.groupby(["category", "label"]).size()
        # stratified: every category × label stratum contributes floor(f × its size), or the one it is owed
        for (cat, label), n in counts.items():
            size = 20 if label == 0 else 8
            assert int(f * size) <= n <= max(1, int(f * size) + label), (f, cat, label, n)   # + a remainder
        assert subset["category"].nunique() == 5                              # a good image in every category
    # 5% of 40 defective images is 2 < 5 categories: 2 images, in 2 categories; 25% is 10 ≥ 5: one in each
    assert b[0.05]["label"].sum() == 2 and b[0.05].loc[b[0.05]["label"] == 1, "category"].nunique() == 2
    assert b[0.25].loc[b[0.25]["label"] == 1, "category"].nunique() == 5
    table = budget_table(b)
    assert table["labelled"].is_monotonic_increasing and table["defective"].iloc[-1] == 40


def test_one_defect_per_category_when_the_budget_allows():
    train = _train(categories=3, good=10, defective=3)                       # 9 defective, 3 categories
    b = nested_budgets(train, (0.34,), seed=0)[0.34]
    assert b.loc[b["label"] == 1, "category"].nunique() == 3


def test_seeds_reproduce_and_differ():
    train = _train()
    a, again = nested_budgets(train, (0.25,), seed=1), nested_budgets(train, (0.25,), seed=1)
    pd.testing.assert_frame_equal(a[0.25], again[0.25])
    other = nested_budgets(train, (0.25,), seed=2)[0.25]
    assert set(other["path"]) != set(a[0.25]["path"])


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match=r"fractions in \(0, 1\]"):
        nested_budgets(_train(), (0.0, 0.5), seed=0)
    with pytest.raises(ValueError, match="lack"):
        nested_budgets(pd.DataFrame({"path": ["a"]}), (0.5,), seed=0)


def test_summary_says_from_how_many_labels_an_approach_overtakes_a_reference():
    from helpers.workflows.labels import summarise

    rows = [{"approach": "sup", "fraction": f, "seed": s, "labelled_defective": d, "test_auroc": a + 0.01 * s}
            for f, d, a in ((0.1, 4, 0.6), (0.25, 10, 0.8), (0.5, 20, 0.75), (1.0, 40, 0.9)) for s in (0, 1)]
    refs = pd.DataFrame([{"approach": "PatchCore", "test_auroc": 0.78}, {"approach": "kNN", "test_auroc": 0.95}])
    out = summarise(pd.DataFrame(rows), refs).set_index("reference")
    # above 0.78 at 10 defects but not at 20: it overtakes for good only from 40
    assert out.loc["PatchCore", "overtakes_at_defective"] == 40
    assert "overtakes PatchCore" in out.loc["PatchCore", "in words"] and "from about 40" in out.loc["PatchCore", "in words"]
    assert pd.isna(out.loc["kNN", "overtakes_at_defective"]) and "does not overtake kNN" in out.loc["kNN", "in words"]
