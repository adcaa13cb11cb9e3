# amsgrad-repro: reproduce "On the Convergence of Adam and Beyond" (Reddi, Kale & Kumar).
#
#   snakemake --cores all                      # the configured scale (config.yaml: scale)
#   snakemake --cores all --config scale=smoke # seconds-long end-to-end check
#
# Stages live in workflow/rules/; helpers shared by the rules in workflow/rules/common.smk.


configfile: "config.yaml"


# snakemake --report results/report.html: the workflow description; figures and tables
# are marked with report() in the rules, each with a caption under workflow/report/.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/stacked.smk"
include: "workflow/rules/grids.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"


# Cheap bookkeeping runs where Snakemake runs, never as a cluster job.
localrules:
    all,
    prepare_dataset,
    aggregate,
    figure1,
    grid_figure,
    analyse,
    cross_task,


rule all:
    default_target: True
    input:
        all_targets(),
