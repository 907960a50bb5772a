"""Studies built on the library: grids of runs, frozen-feature head studies, data efficiency,
robustness sweeps, circuit export, feature extraction and published numbers. A study imports the
library (`data`, `models`, `training`, `evaluation`); the library never imports a study."""
