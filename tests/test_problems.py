"""The synthetic problems' declarations (``synthetic.problems``) against what is written
elsewhere about them: the configuration schema's enumerations and bounds, and the laws
the compiled kernel runs."""

from __future__ import annotations

import numpy as np
import yaml

from amsgrad_repro.synthetic.problems import PROBLEMS, problem_id


def _schema(repo_root):
    return yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())


def test_the_schema_names_the_declared_problems_and_their_parameters(repo_root):
    defs = _schema(repo_root)["$defs"]
    task = defs["synthetic_task"]
    assert task["properties"]["problem"]["enum"] == list(PROBLEMS)
    assert defs["grid"]["properties"]["problems"]["items"]["enum"] == list(PROBLEMS)
    required = {
        rule["if"]["properties"]["problem"]["const"]: rule["then"]["required"]
        for rule in task["allOf"]
    }
    assert required == {n: [p.parameter] for n, p in PROBLEMS.items() if p.parameter}
    for problem in PROBLEMS.values():
        if problem.parameter:
            declared = task["properties"][problem.parameter]
            assert declared["exclusiveMinimum"] == problem.minimum, problem.name
            assert declared["description"] == problem.parameter_doc, problem.name


def test_the_compiled_laws_are_the_declared_ones():
    """The kernel's dispatch runs each declaration's law: the same draws as the law called
    in Python with the generator's values, step by step."""
    from amsgrad_repro.synthetic.kernel import gradient_sequence
    from amsgrad_repro.synthetic.problems import stream

    for name, problem in PROBLEMS.items():
        big = 2.0 * (problem.minimum or 1.0) + 1.0
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as compiled
            start = stream(3)
            expected = [problem.law(t, big, start) for t in range(1, 401)]
        compiled = gradient_sequence(problem_id(name), big, 3, 400)
        np.testing.assert_array_equal(compiled, expected, err_msg=name)
