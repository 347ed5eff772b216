"""Jobs: the end-to-end tasks the CLI and notebooks run (launch, drive, collect, write a folder).
They sit above collect/launch/bench/export and below cli."""
