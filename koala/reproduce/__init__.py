"""Small, seeded, CPU-sized versions of each paper's central comparison -> REPORT.md.

Each paper's claim is a module of `claims/` holding its comparison as data (the runs it
trains and their overrides, the methods, the claims and their metrics) and the function
that measures it; every claim is set beside its measurement and judged agrees / disagrees /
inconclusive from the paired per-image differences.

  budget        Budget (how big every run is), BUDGETS, Context (where files go)
  runs          records, training runs, model outputs on val images
  measure       per-image metrics; Comparison: every method on the same val images
  reproduction  Reproduction / Run / Sweep (a claim as data) and the usual measure
  verdict       Claim, Section, the paired verdict
  markdown      the tables, REPORT.md and its summary for the README
  readme        that summary written between README.md's report markers
  figures       image grids and sweep plots
  claims/       rarity_mse (000), global_embedding (001), class_rebalancing (002),
                reference_guided (003), cifar_regression_vs_classification (004)
  run           run(): CLAIMS (the registry, in running order) -> REPORT.md
"""
