"""Cascades: selections over video answered at a stated accuracy with cheap models first
(NoScope inside the database).

``SET inference_accuracy = 0.95`` is the contract: a query selecting frames by a model's
answer (``WHERE m(frame).label = 'bus'``, ``WHERE m(frame).score > 0.8``) returns frames
whose precision and recall against running the reference model on every frame are at least
0.95, as 95% lower confidence bounds on a held-out calibration sample; an aggregate
returns an estimate whose 95% interval is within 0.05 of it, a top k one whose overlap with
the exact top k is bounded at 0.95.  The planner rule
:mod:`engine.planner.plan_cascades` finds such a condition; the step
(:class:`engine.planner.steps.CascadeStep`) runs :func:`engine.cascades.run.cascade_relation`:

| module | what |
| --- | --- |
| :mod:`.bounds` | Clopper-Pearson bounds: what certifies the contract |
| :mod:`.calibration` | the specialized model's two thresholds, set on the calibration sample |
| :mod:`.specialized` | the tiny CNN at 64x64, trained with :mod:`engine.training` |
| :mod:`.difference` | the difference detector (``frame_difference`` of the incremental engine) |
| :mod:`.store` | ``mallard.specialized_models`` (lineage, reuse) and ``mallard.cascades`` |
| :mod:`.run` | the cascade itself, its fallbacks to exact inference, EXPLAIN's text |
| :mod:`.estimate` | BlazeIt's control-variate estimator of a mean, sampled in rounds to the contract |
| :mod:`.top_k` | ranking by the specialized model, confirmed until the top k is certain |
| :mod:`.blazeit` | ``count(*)``, ``avg(score)`` and ``ORDER BY score DESC LIMIT k`` under the contract |

Importing this package does not import torch.
"""
