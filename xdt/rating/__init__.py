"""Explicit-rating cold-start transfer (issue 4): predict target-domain ratings of users known only in the source domain.

Public API (TensorFlow is imported only by `models` and `training`):

- `xdt.rating.training.rating_data_from_prepared(dataset, valid_fraction=0.15, seed=0) -> RatingData`
  from a dataset prepared with `protocol: cold_users` (e.g. configs/douban-*.yaml); the prepared
  `valid` cohort (cold validation users drawn from the meta users) is used for early stopping.
- `xdt.rating.training.run_rating_methods(data, methods, RatingSettings(), seed) -> RatingRun`:
  `methods` ⊆ `METHODS` = global_mean, item_mean, user_mean, target_mf, emcdr, ptupcdr;
  `RatingRun.predictions[method]` are the test ratings' predictions (clipped to the rating range),
  `.fits` the early-stopping records (best epoch, validation score, per-epoch seconds), `.models`
  the trained Keras models (save with `model.save("x.keras")`).
- `xdt.rating.evaluation.evaluate_ratings(predictions, targets, users, cohorts=..., source_activity=...)`:
  MAE / RMSE over all test ratings, per cohort and per source-activity bucket.
- `xdt.rating.baselines`: `predict_global_mean`, `predict_item_mean`, `predict_user_mean` (numpy).
- `xdt.rating.models`: `BiasedMatrixFactorization` (r̂ = μ + b_u + b_i + p_u·q_i), `EmcdrRating`,
  `PtupcdrRating`, all registered as `xdt>...` Keras serialisables; each maps `(users, items)` to
  ratings `(batch, 1)`.
- `xdt.rating.experiment.evaluate_rating_run(run, config)`: a rating run's results.json again from
  its saved models (`xdt evaluate`); `xdt.rating.recommendation.rating_scorer`: every target item's
  predicted rating for `xdt recommend`.
- Stages one by one: `train_target_mf`, `train_source_mf`, `train_emcdr`, `train_ptupcdr`
  (`xdt.rating.training`), each returning `(model, FitResult)`.

Benchmark: bench/douban_rating.py (18 published Douban splits vs ../shared/benchmarks/PEERS.md).
"""
