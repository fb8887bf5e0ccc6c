"""One module per paper's claim: its `SPEC` (a reproduction.Reproduction, the comparison
as data) and `measure(context) -> verdict.Section`. The order they run in is
koala.reproduce.run.CLAIMS."""
