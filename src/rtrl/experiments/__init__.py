"""The paper's experiments: one training run (:mod:`.training`), the claims (:mod:`.claims`),
and (in other modules) the runner, report, figures and CLI built on them."""
