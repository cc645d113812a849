"""The host side: latency tables, the few-shot methods, the evaluation harness, train / pack / adapt.

- ``data``: loaders for the shared latency-table format, device groups.
- ``methods``: the ``Method`` interface and the registry the harness finds methods through.
- ``bayes_linear``: the shipped predictor (Bayesian linear model, its int8 form, packing);
  ``mlp``: MAPLE-Edge's MLP shape in numpy; ``baselines``: FLOPs, ridge, kriging, the ceiling;
  ``_numerics``: what they share. A new predictor is a module here listed in ``methods.PROVIDERS``.
- ``operator_sum``: the operator-sum prior (a network's latency from the descriptor's operators).
- ``adapt``: a base predictor adapted to a device, closed form (the main job's adaptation step).
- ``train``: a base predictor trained on tables and packed.
- ``evaluate``: the harness (leave-one-group-out, metrics, paired differences, reports).

Methods never import the harness; nothing here imports the CLI."""
