"""The tuning stage: the paper's protocol for α and β2.

Per task × optimizer a grid over α and β2 (config ``tuning:``, on when ``tune: true``) runs
on the tuning seeds, is scored on the validation split (never the test set), and the chosen
point goes to ``results/tuning/<task>/<optimizer>.json``, which the seed-replicated runs of
that optimizer read (``--hparams-file``). ``grid`` declares and checks the grids and gives
each point's settings, ``select`` reads the grid runs, picks a point and measures how
sensitive each optimizer is to the grid, ``figure`` draws that, ``cli`` holds the commands.
Stacked tasks run a native optimizer's whole grid as one job (``train.jobs``).
"""
