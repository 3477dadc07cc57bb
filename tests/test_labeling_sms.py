"""The real SMS spam collection end to end: a dozen keyword/regex/length SQL functions, the
label model well above majority vote, gold labels on a sample."""
from __future__ import annotations

import pytest

from tests.conftest import data_file
from tests.labeling_sms import create_sms_lfs, load_sms

QUALITY = """
SELECT avg(CASE WHEN l.label IS NULL THEN 0.5 ELSE (l.label = s.truth)::INT END) AS accuracy,
       sum((l.label = 'spam' AND s.truth = 'spam')::INT) AS tp,
       sum((l.label = 'spam' AND s.truth = 'ham')::INT) AS fp,
       sum((coalesce(l.label, 'ham') = 'ham' AND s.truth = 'spam')::INT) AS fn
FROM {} l JOIN sms s USING (id) WHERE l.provenance = 'weak'
"""


def quality(con, table: str) -> tuple[float, float]:
    """Accuracy (a tie counts as a coin flip, as Snorkel's random tie-break) and spam F1."""
    accuracy, tp, fp, fn = con.execute(QUALITY.format(table)).fetchone()
    return accuracy, 2 * tp / (2 * tp + fp + fn)


@pytest.fixture
def sms(con):
    load_sms(con, data_file("spam_collection.tsv"))
    return con, create_sms_lfs(con)


def test_label_model_is_well_above_majority_vote_on_real_sms(sms):
    con, names = sms
    lfs = ", ".join(names)
    con.execute(f"LABEL sms USING {lfs} WITH (classes = ['ham', 'spam']) INTO model_labels")
    con.execute(f"LABEL sms USING {lfs} WITH (classes = ['ham', 'spam'], model = 'majority') INTO vote_labels")
    model_accuracy, model_f1 = quality(con, "model_labels")
    vote_accuracy, vote_f1 = quality(con, "vote_labels")
    assert model_accuracy > 0.96 and model_f1 > 0.85
    assert model_accuracy > vote_accuracy + 0.2  # most messages get no vote: abstaining is evidence of ham
    assert model_f1 > vote_f1
    balance = {r[0]: r[1] for r in con.execute("SHOW CLASS BALANCE FOR model_labels").fetchall()}
    assert abs(balance["spam"] - 642 / 4862) < 0.03  # the estimated class balance is close to the true one


def test_gold_sample_measures_the_functions_and_overrides_labels(sms):
    con, names = sms
    con.execute("ADD GOLD LABELS TO sms FROM (SELECT id, truth AS label FROM sms WHERE id % 5 = 0)")
    con.execute(f"LABEL sms USING {', '.join(names)} WITH (classes = ['ham', 'spam']) INTO labels")
    assert con.execute("SELECT count(*) FROM labels WHERE provenance = 'gold'").fetchone() == (4862 // 5,)
    wrong_gold = con.execute("SELECT count(*) FROM labels l JOIN sms s USING (id) WHERE l.provenance = 'gold'"
                             " AND (l.label <> s.truth OR l.weight <> 1)").fetchone()
    assert wrong_gold == (0,)
    analysis = con.execute("SHOW LABEL ANALYSIS FOR labels").fetchall()
    by_truth = dict(con.execute(
        "SELECT 'lf_short', avg((s.truth = 'ham')::INT) FROM sms s WHERE id % 5 = 0 AND length(text) < 25").fetchall())
    short = next(r for r in analysis if r[0] == "lf_short")
    assert short[7] == pytest.approx(by_truth["lf_short"])  # emp_acc, recomputed by a plain query
    informative = [r for r in analysis if r[5] + r[6] >= 30]
    assert len(informative) >= 8
    assert all(abs(r[8] - r[7]) < 0.08 for r in informative)  # learned (no gold used) vs empirical accuracy
