"""The helper package of the projects (project/, experiments/, benchmarks/):
the table of datasets and the parsers of their canonical copies (`datasets`,
`canonical`), training data (`corpora`), training and evaluating pipelines
(`pipelines`), baselines, metrics, plots, reports, pretraining, and files.
The scripts are command-line wrappers over it."""
