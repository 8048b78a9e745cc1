"""Berg serving: a use case's scoring endpoint on KServe, standard (transformer + predictor) or fused.

- :mod:`~berg_serving.scoring_request`: what a request may hold (V1 instances, V2 tensors), against the scored contract.
- :mod:`~berg_serving.features`: the feature vector at scoring time, as training saw it.
- :mod:`~berg_serving.decisions`, :mod:`~berg_serving.predictions`: from scores to decisions and log records.
- :mod:`~berg_serving.champion`: the registry version being served, and the hot-swap watcher.
- :mod:`~berg_serving.online`, :mod:`~berg_serving.scorers`: Feast's planned lookup, and the model.
- :mod:`~berg_serving.protocol`: every wire format; :mod:`~berg_serving.models`: the ``kserve.Model`` classes.
- :mod:`~berg_serving.server`: REST and gRPC with a graceful stop; :mod:`~berg_serving.runner`: the shapes.
- :mod:`~berg_serving.prediction_log`: every prediction to the ``predictions`` topic, never blocking a request.

Run it with ``python -m berg_serving --shape fused|transformer|predictor`` (see ``docs/serving.md``).
"""
