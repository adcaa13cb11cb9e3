"""Claims, verdicts and the analysis tables over finished runs, built on ``summaries``."""
