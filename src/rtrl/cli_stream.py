"""``rtrl stream``: learn online from CSV rows on a file or stdin, one prediction line per row.

A thin layer: it resolves the arguments, builds or loads the learner, opens the files,
installs the SIGINT/SIGTERM handlers and maps outcomes to exit codes. The loop itself is
:class:`rtrl.stream.Stream`. Exit codes: 0 done (also after SIGINT/SIGTERM, with a final
checkpoint), 1 a bad row (``--on-bad-row error``), 2 a usage or file problem,
3 training diverged or saturated, 4 the predictions or a checkpoint could not be written.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
from typing import Any

from .activations import ACTIVATIONS
from .api import ENGINES

__all__ = ["add_parser", "main_stream", "main_predict"]

#: The longest lag, in rows (each lag of each input column is an input line and rows of history are kept).
MAX_LAG = 100_000

DESCRIPTION = """\
Learn online with real-time RTRL from CSV rows (a file with a header, or stdin with -).
Each data row is one time step: its --inputs cells are x(t); the network produces y(t+1)
with the weights as they are before this row's update, writes the target units' outputs
(one line per row, flushed at once), then learns from the row's --targets cells (an empty
or NaN cell means no target at this step). So the prediction on output line `row` is the
network's estimate of that row's target columns, made before it has seen them. To
forecast a series one step ahead, put x(t) in an input column and x(t+1) in the target
column of the same row."""

EPILOG = """\
exit codes: 0 done (or stopped by SIGINT/SIGTERM after saving a checkpoint), 1 bad row
(with --on-bad-row error; a checkpoint of the state before the row is saved), 2 usage or
file error (also: the checkpoint is in use by another run), 3 training diverged or
saturated (the last good checkpoint is left as it was), 4 cannot write --out or the
checkpoint (missing or read-only folder, disk full; the last checkpoint is left as it was).
See docs/streaming.md."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("stream", help="learn online from CSV rows on a file or stdin",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", default="-", metavar="INPUT|-",
                   help="CSV file with a header line, or - for stdin (default)")
    p.add_argument("--inputs", metavar="COLS",
                   help="comma list of input columns (required unless resuming from a checkpoint)")
    p.add_argument("--targets", metavar="COLS",
                   help="comma list of target columns; target column i trains unit i "
                        "(required unless resuming from a checkpoint)")
    p.add_argument("--units", type=int, metavar="N",
                   help="number of units n, target units included (default: number of targets + 4)")
    p.add_argument("--lr", type=float, metavar="A",
                   help="learning rate (default 0.1); with --model/--resume it overrides the saved one")
    p.add_argument("--activation", metavar="NAME[,NAME...]",
                   help=f"unit activation, one of {', '.join(ACTIVATIONS)}, for every unit or a comma list of one "
                        "per unit (default logistic)")
    p.add_argument("--output-activation", metavar="NAME",
                   help="activation of the target units only (e.g. linear for raw real-valued targets); the other "
                        "units keep --activation")
    p.add_argument("--optimizer", metavar="NAME",
                   help="sgd (default), momentum, rmsprop or adam (rtrl.optim); e.g. --optimizer adam --lr 1e-3")
    p.add_argument("--optimizer-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the optimizer, e.g. beta2=0.99 for adam (repeatable)")
    p.add_argument("--schedule", metavar="SPEC",
                   help="learning-rate schedule: constant (default), inverse-time:STEPS, cosine:PERIOD (warm "
                        "restarts); with --model/--resume it replaces the saved one")
    p.add_argument("--schedule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the schedule, e.g. mult=2 or floor=0.1 for cosine (repeatable)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise inputs and targets online (running mean and standard deviation, saved in "
                        "checkpoints) and write predictions in the data's units; use with linear target units")
    p.add_argument("--lags", type=int, metavar="K",
                   help="lagged inputs: each input column's values of the K previous rows are input lines too "
                        "(with a linear target unit: an online AR(K) model, plus the recurrent units' memory)")
    p.add_argument("--seasonal-lags", metavar="S[,S...]",
                   help="more lags, e.g. 12 for monthly data: each input column's value S rows back")
    p.add_argument("--horizon", type=int, metavar="H",
                   help="forecasts 1..H rows ahead per row (columns pred_<t>, pred_<t>_h2, ...): a free run of a "
                        "copy of the network, forecasts fed back (--feedback); default 1")
    p.add_argument("--feedback", metavar="TARGET=INPUT[,...]",
                   help="which input column each target's forecast feeds in the free run (default: the one input, "
                        "with one input and one target); other inputs hold their last value")
    p.add_argument("--no-learn", action="store_true",
                   help="serve a model (--model or --resume): predict at forward cost, the weights stay "
                        "(target columns are not read); the same as rtrl predict")
    p.add_argument("--teacher-forcing", action=argparse.BooleanOptionalAction, default=None,
                   help="feed targets forward in place of the target units' outputs (default off)")
    p.add_argument("--clip-norm", type=float, metavar="C",
                   help="cap the Frobenius norm of each per-step gradient (default: no cap)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads for the compiled loops and BLAS (default: RTRL_NUM_THREADS, OMP_NUM_THREADS or the "
                        "cores; see rtrl.threads)")
    p.add_argument("--engine", choices=ENGINES, help="numba (default), numpy (the reference) or jax (rules rtrl and hybrid; pip install 'rtrl[jax]')")
    p.add_argument("--rule", metavar="SPEC",
                   help="learning rule: rtrl (default, exact), hybrid, bptt:H, subgroup:G, snap-1, uoro, kf-rtrl, "
                        "rflo, eprop (see docs/rules.md)")
    p.add_argument("--rule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the rule, e.g. tau=2 for rflo or rng=3 for uoro (repeatable)")
    p.add_argument("--model", metavar="PATH", help="start from a saved model file")
    p.add_argument("--checkpoint", metavar="PATH", help="save checkpoints (model files) to PATH")
    p.add_argument("--every", type=int, default=0, metavar="N",
                   help="save a checkpoint every N rows (needs --checkpoint; default: only at the end)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists: a file INPUT skips the rows it consumed, "
                        "an --out file is cut back to match it")
    p.add_argument("--on-bad-row", choices=("error", "skip"), default="error",
                   help="error (default): stop with exit 1 naming the line and column; skip: count it, "
                        "leave the state alone, write an empty prediction line")
    p.add_argument("--clip-targets", action="store_true",
                   help="clip a target outside the range of its unit ([0, 1] logistic, [-1, 1] tanh) to the range "
                        "and count it (default: such a row is a bad row)")
    p.add_argument("--saturation-rows", type=int, default=None, metavar="N",
                   help="stop with exit 3 when a target unit's output sits at a bound of its range for N targeted "
                        "rows in a row (default 100; 0: never)")
    p.add_argument("--out", default="-", metavar="FILE|-", help="prediction CSV (default - for stdout)")
    p.set_defaults(func=main_stream)
    add_predict_parser(subparsers)


def _fail(message, code=2) -> int:
    print(f"rtrl stream: error: {message}", file=sys.stderr, flush=True)
    return code


def _is_regular(path) -> bool:
    """True if ``path`` is a regular file or does not exist yet (False for a device, a pipe, a folder)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # let open() report it


def _note(message) -> None:
    print(f"rtrl stream: {message}", file=sys.stderr, flush=True)


def _same_file(a, b) -> bool:
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


def _build_learner(args, n_inputs, n_targets):
    """A new learner from the command line's settings, or the loaded one checked against them."""
    from ._validation import check_positive
    from .learner import OnlineLearner

    if args.lr is not None:  # named as the user typed it
        check_positive(args.lr, "--lr", allow_zero=True)
    if args.clip_norm is not None:
        check_positive(args.clip_norm, "--clip-norm")
    n = args.units if args.units is not None else n_targets + 4
    n_inputs *= 1 + len(_lags(args) or ())
    return OnlineLearner(n, n_inputs,
                         learning_rate=0.1 if args.lr is None else args.lr, rule=_rule(args),
                         activation=_activation(args, n, n_targets), teacher_forcing=bool(args.teacher_forcing),
                         rng=args.seed, engine=args.engine or "numba", clip_norm=args.clip_norm,
                         optimizer=_optimizer(args) or "sgd", schedule=_schedule(args) or "constant")


def _activation(args, n, n_targets):
    """--activation (one name, or a comma list of n names) and --output-activation, as the learner takes them."""
    from .activations import check_activation

    given = args.activation or "logistic"
    names = [a.strip() for a in given.split(",")]
    try:
        act = check_activation(names[0] if len(names) == 1 else names, n)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--activation {given}: {str(exc).split(': ', 1)[-1]}") from None
    if args.output_activation is not None:
        try:
            check_activation(args.output_activation)
        except ValueError:
            raise ValueError(f"--output-activation: expected one of {ACTIVATIONS}, got "
                             f"{args.output_activation!r}") from None
        per_unit = [act] * n if isinstance(act, str) else list(act)
        per_unit[:n_targets] = [args.output_activation] * n_targets
        act = check_activation(per_unit, n)
    return act


def _lags(args):
    """The lag offsets of --lags K (1..K) and --seasonal-lags, sorted; None if neither is given."""
    if args.lags is None and args.seasonal_lags is None:
        return None
    out = set()
    if args.lags is not None:
        if not 1 <= args.lags <= MAX_LAG:
            raise ValueError(f"--lags: expected an integer from 1 to {MAX_LAG} (rows back), got {args.lags}")
        out.update(range(1, args.lags + 1))
    if args.seasonal_lags is not None:
        for cell in args.seasonal_lags.split(","):
            try:
                v = int(cell.strip())
            except ValueError:
                raise ValueError(f"--seasonal-lags: expected integers >= 1 separated by commas, got "
                                 f"{args.seasonal_lags!r}") from None
            if not 1 <= v <= MAX_LAG:
                raise ValueError(f"--seasonal-lags: expected integers from 1 to {MAX_LAG}, got {v}")
            out.add(v)
    return tuple(sorted(out))


def _feedback(args):
    """--feedback TARGET=INPUT pairs as a dict, or None."""
    if args.feedback is None:
        return None
    out = {}
    for pair in args.feedback.split(","):
        tgt, sep, col = pair.partition("=")
        if not sep or not tgt.strip() or not col.strip():
            raise ValueError(f"--feedback: expected TARGET=INPUT pairs separated by commas, got {args.feedback!r}")
        out[tgt.strip()] = col.strip()
    return out


def _from_flags(kind, name, pairs, make):
    """An optimizer or schedule from ``--KIND NAME`` and ``--KIND-option KEY=VALUE`` pairs; None if neither is given."""
    from .rules import parse_rule_options

    if name is None and not pairs:
        return None
    if name is None:
        raise ValueError(f"--{kind}-option needs --{kind} NAME")
    try:
        return make(name, **parse_rule_options(pairs, flag=f"--{kind}-option"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--{kind} {name}: {exc}") from None


def _optimizer(args):
    """The optimizer of --optimizer/--optimizer-option, or None if neither is given."""
    from .optim import make_optimizer

    return _from_flags("optimizer", args.optimizer, args.optimizer_option, make_optimizer)


def _schedule(args):
    """The schedule of --schedule/--schedule-option, or None if neither is given."""
    from .optim import make_schedule

    return _from_flags("schedule", args.schedule, args.schedule_option, make_schedule)


def _rule(args, *, seed=True):
    """The rule of --rule/--rule-option; a rule that draws random numbers is seeded by --seed unless rng= is given."""
    from .rules import make_from_cli

    if args.rule_option and args.rule is None:
        raise ValueError("--rule-option needs --rule NAME")
    rule = make_from_cli(args.rule or "rtrl", args.rule_option)
    if seed and "rng" in rule.options() and not any(p.strip().startswith("rng=") for p in args.rule_option):
        rule = make_from_cli(args.rule, [*args.rule_option, f"rng={args.seed}"])
    return rule


def _check_loaded(args, learner, path):
    """Reject network flags that contradict a loaded model; apply optimizer overrides (--lr, --clip-norm)."""
    from .activations import describe

    act = None
    if args.activation is not None or args.output_activation is not None:
        act = _activation(args, learner.n_units, len(getattr(args, "_targets", None) or ()) or 1)
    for flag, given, saved in (("--units", args.units, learner.n_units),
                               ("--activation", act, learner.activation),
                               ("--teacher-forcing", args.teacher_forcing, learner.teacher_forcing)):
        if given is not None and given != saved:
            if flag == "--activation":
                given, saved = describe(given), describe(saved)
            raise ValueError(f"{flag} {given} contradicts the model in {path} ({saved}); drop the flag or "
                             "start a new model")
    opt = _optimizer(args)
    if opt is not None and opt != learner.optimizer:
        raise ValueError(f"--optimizer {opt.name} {opt.options()} contradicts the model in {path} (optimizer "
                         f"{learner.optimizer.name} {learner.optimizer.options()}, whose state it keeps); drop the "
                         "flag or start a new model")
    sched = _schedule(args)
    if sched is not None and sched != learner.schedule:
        _note(f"schedule {learner.schedule.name} {learner.schedule.options()} from {path} replaced by --schedule "
              f"{sched.name} {sched.options()}")
        learner.schedule = sched
    if args.rule is not None or args.rule_option:
        from .rules import parse_rule_options

        rule = _rule(args, seed=False)
        given = set(parse_rule_options(args.rule_option))
        if ":" in (args.rule or "") or (args.rule or "").startswith("snap-"):
            given.add(rule.short_option)
        saved = learner.rule
        if rule.name != saved.name or any(rule.options()[k] != saved.options()[k] for k in given):
            raise ValueError(f"--rule {rule.spec} contradicts the model in {path} (rule {saved.spec}, options "
                             f"{saved.options()}); drop the flag or start a new model")
    from ._validation import check_positive

    if args.lr is not None:
        check_positive(args.lr, "--lr", allow_zero=True)
    if args.clip_norm is not None:
        check_positive(args.clip_norm, "--clip-norm")
    if args.lr is not None and args.lr != learner.learning_rate:
        _note(f"learning rate {learner.learning_rate:g} from {path} replaced by --lr {args.lr:g}")
        learner.learning_rate = args.lr
    if args.clip_norm is not None and args.clip_norm != learner.clip_norm:
        _note(f"clip norm {learner.clip_norm} from {path} replaced by --clip-norm {args.clip_norm:g}")
        learner.clip_norm = args.clip_norm
    if args.engine is not None:
        learner.engine = args.engine


def main_stream(args) -> int:
    from .io import ModelFileError, load_with_metadata
    from .stream import SATURATION_ROWS, Stream, StreamError, checkpoint_info, parse_columns

    # -- resolve the start: checkpoint, model file or a new network ---------------------------
    if args.every < 0:
        return _fail(f"--every: expected an integer >= 0, got {args.every}")
    if args.saturation_rows is not None and args.saturation_rows < 0:
        return _fail(f"--saturation-rows: expected an integer >= 0, got {args.saturation_rows}")
    if args.every and not args.checkpoint:
        return _fail("--every needs --checkpoint PATH")
    if args.resume and not args.checkpoint:
        return _fail("--resume needs --checkpoint PATH")
    if args.threads is not None and args.threads < 1:
        return _fail(f"--threads: expected an integer >= 1, got {args.threads}")
    if args.horizon is not None and args.horizon < 1:
        return _fail(f"--horizon: expected an integer >= 1, got {args.horizon}")
    if args.no_learn and not (args.model or (args.resume and os.path.exists(args.checkpoint))):
        return _fail("--no-learn serves a trained model: give --model PATH (or --resume with an existing "
                     "--checkpoint)")
    try:
        inputs = None if args.inputs is None else parse_columns(args.inputs, "--inputs")
        targets = None if args.targets is None else parse_columns(args.targets, "--targets")
        learner, info, model_info = None, None, None
        if args.resume and os.path.exists(args.checkpoint):
            learner, meta = load_with_metadata(args.checkpoint)
            info = checkpoint_info(meta)
            if info is None:
                return _fail(f"{args.checkpoint} is a model file but not a stream checkpoint (no row count); "
                             "start from it with --model instead of --resume")
            for flag, given, saved in (("--inputs", inputs, tuple(info["inputs"])),
                                       ("--targets", targets, tuple(info["targets"]))):
                if given is not None and given != saved:
                    return _fail(f"{flag} {','.join(given)} differs from the checkpoint's {','.join(saved)}")
            inputs, targets = tuple(info["inputs"]), tuple(info["targets"])
            args._targets = targets
            _check_loaded(args, learner, args.checkpoint)
            model_info = info
        else:
            if args.resume:
                _note(f"no checkpoint at {args.checkpoint} yet: starting at row 1")
            if args.model:
                learner, meta = load_with_metadata(args.model)
                model_info = checkpoint_info(meta)
                if model_info is not None:  # a stream's checkpoint: its columns are the defaults
                    inputs = inputs or tuple(model_info["inputs"])
                    targets = targets or tuple(model_info["targets"])
            if inputs is None or targets is None:
                return _fail("--inputs and --targets are required (unless resuming from a checkpoint, or "
                             "starting from a stream's checkpoint with --model)")
            args._targets = targets
            if args.model:
                assert learner is not None
                _check_loaded(args, learner, args.model)
            else:
                if args.units is not None and args.units < len(targets):
                    return _fail(f"--units: expected at least one unit per target ({len(targets)}), "
                                 f"got {args.units}")
                learner = _build_learner(args, len(inputs), len(targets))
        source = "-" if args.input == "-" else os.path.abspath(args.input)
        out_path = None if args.out == "-" else os.path.abspath(args.out)
        named = [(f, p) for f, p in (("INPUT", source if source != "-" else None), ("--out", out_path),
                                     ("--checkpoint", args.checkpoint), ("--model", args.model)) if p]
        for i, (flag_a, a) in enumerate(named):
            for flag_b, b in named[i + 1:]:
                if _same_file(a, b) and {flag_a, flag_b} != {"--checkpoint", "--model"}:
                    return _fail(f"{flag_a} and {flag_b} name the same file {a}; the run would overwrite it")
        assert learner is not None
        if args.threads is not None:
            learner.threads = args.threads
        if info is not None and info.get("run"):
            run_info = info["run"]  # how the stream was first started
        else:
            run_info = {"started_from": args.model or "new network",
                        "seed": None if args.model else args.seed, **learner.config()}
        counts: dict[str, Any] = ({k: int(info.get(k) or 0) for k in ("rows_read", "bad_rows", "clipped_targets")}
                                  if info else {})
        stream = Stream(learner, inputs, targets, checkpoint=args.checkpoint, every=args.every,
                        on_bad_row=args.on_bad_row, source=source, out_path=out_path, run_info=run_info,
                        clip_targets=args.clip_targets,
                        saturation_rows=SATURATION_ROWS if args.saturation_rows is None else args.saturation_rows,
                        learn=not args.no_learn, standardize=_standardize(args, model_info, inputs, targets),
                        **_forecasting(args, model_info), **counts)
    except ModelFileError as exc:
        return _fail(f"cannot read model file {exc}")
    except (TypeError, ValueError) as exc:
        return _fail(str(exc))

    # -- check the checkpoint path (and lock it) before anything is read or written -----------
    try:
        stream.prepare()
    except StreamError as exc:
        return _fail(_flagged(exc, args), exc.exit_code)
    try:
        return _run(args, stream, info, source, out_path)
    finally:
        stream.close()


def _forecasting(args, model_info):
    """lags, history, horizon and feedback for the Stream: the command line's, checked against a checkpoint's."""
    saved = model_info or {}
    lags = _lags(args)
    saved_lags = tuple(saved.get("lags") or ())
    if model_info is not None and lags is not None and lags != saved_lags:
        raise ValueError(f"--lags/--seasonal-lags {list(lags)} contradict the model's lags {list(saved_lags)} (its "
                         "input lines were made for them); drop the flags or start a new model")
    horizon = args.horizon if args.horizon is not None else saved.get("horizon", 1)
    feedback = _feedback(args)
    if feedback is None:
        feedback = saved.get("feedback")
    return {"lags": lags if lags is not None else saved_lags, "history": saved.get("history") or (),
            "horizon": int(horizon), "feedback": feedback}


def _standardize(args, model_info, inputs, targets):
    """--standardize against what a loaded stream checkpoint kept: True/False, or the saved statistics."""
    from .preprocessing import RunningStandardizer

    saved = (model_info or {}).get("standardize")
    if saved is None:
        if args.standardize and model_info is not None and args.resume:
            raise ValueError("--standardize: the checkpoint was made without it (its model learned raw values); "
                             "drop the flag or start a new model")
        return bool(args.standardize)
    if args.standardize is False:
        raise ValueError("--no-standardize: the model was trained on standardised values (its statistics are in "
                         "the file); drop the flag")
    if list(model_info["inputs"]) != list(inputs) or list(model_info["targets"]) != list(targets):
        raise ValueError("--inputs/--targets: the model's standardisation statistics belong to its columns "
                         f"{model_info['inputs']} -> {model_info['targets']}; name the same columns")
    try:
        return (RunningStandardizer.from_dict(saved["inputs"], len(inputs)),
                RunningStandardizer.from_dict(saved["targets"], len(targets)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the model file's standardisation record is damaged ({exc})") from None


def add_predict_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="serve a saved model on CSV rows at forward speed (no learning)",
                              description="Predict with a saved model (a stream checkpoint or any model file), one "
                                          "line per CSV row, without learning: each row costs O(n K), not the "
                                          "learning rule's step. Equivalent to rtrl stream --model MODEL --no-learn. "
                                          "Inputs, targets and standardisation default to the checkpoint's.")
    p.add_argument("model", metavar="MODEL", help="model file (e.g. a checkpoint of rtrl stream)")
    p.add_argument("input", nargs="?", default="-", metavar="INPUT|-", help="CSV file, or - for stdin (default)")
    p.add_argument("--inputs", metavar="COLS", help="input columns (default: the checkpoint's)")
    p.add_argument("--targets", metavar="COLS",
                   help="names of the predicted columns, target unit i for name i (default: the checkpoint's)")
    p.add_argument("--on-bad-row", choices=("error", "skip"), default="error")
    p.add_argument("--out", default="-", metavar="FILE|-", help="prediction CSV (default - for stdout)")
    p.set_defaults(func=main_predict)


def main_predict(args) -> int:
    """``rtrl predict``: ``rtrl stream --model MODEL --no-learn`` with everything else at its default."""
    full = argparse.Namespace(
        input=args.input, inputs=args.inputs, targets=args.targets, units=None, lr=None, activation=None,
        output_activation=None, optimizer=None, optimizer_option=[], schedule=None, schedule_option=[],
        standardize=None, no_learn=True, teacher_forcing=None, clip_norm=None, seed=0, threads=None, engine=None,
        lags=None, seasonal_lags=None, horizon=None, feedback=None, rule=None,
        rule_option=[], model=args.model, checkpoint=None, every=0, resume=False, on_bad_row=args.on_bad_row,
        clip_targets=False, saturation_rows=None, out=args.out)
    return main_stream(full)


def _flagged(exc, args) -> str:
    """The message of a WriteError with the command line's flag names."""
    from .stream import WriteError

    if isinstance(exc, WriteError):
        flag = "--checkpoint" if exc.what == "checkpoint" else "--out"
        path = args.checkpoint if exc.what == "checkpoint" else args.out
        return f"cannot write {flag} {path}: {exc.reason}{exc.consequence}"
    return str(exc)


def _run(args, stream, info, source, out_path) -> int:
    from .stream import BadRowError, DivergedError, StreamError, WriteError, read_lines

    # -- open the input and the output --------------------------------------------------------
    skip = 0
    if info is not None:
        if source == "-":
            _note(f"resuming after row {info['rows_read']}: stdin rows are all new rows")
        else:
            skip = info["rows_read"]
            if info.get("source") not in (None, "-") and not _same_file(info["source"], source):
                _note(f"warning: the checkpoint was made reading {info['source']}; skipping its "
                      f"{skip} rows of {source}")
    try:
        if source == "-":
            infile = None
            lines = read_lines(sys.stdin.buffer)
        else:
            if os.path.isdir(source):
                return _fail(f"cannot open INPUT {args.input}: it is a folder")
            infile = open(source, "rb")
            lines = read_lines(infile)
    except OSError as exc:
        return _fail(f"cannot open INPUT {args.input}: {exc.strerror or exc}")
    out_bytes, write_header = 0, True
    try:
        if out_path is None:
            out = sys.stdout.buffer
        elif not _is_regular(out_path):
            # A device or a pipe (/dev/null, a FIFO): nothing to cut back; write on, like stdout.
            out = open(out_path, "wb")
        elif info is not None and _same_file(info.get("out_path"), out_path) and info.get("out_bytes") is not None:
            # Resume the same output file: cut it back to what the checkpoint had written.
            out = open(out_path, "r+b")
            size = os.fstat(out.fileno()).st_size
            if size < info["out_bytes"]:
                out.close()
                if infile is not None:
                    infile.close()
                return _fail(f"--out {args.out} has {size} bytes but the checkpoint wrote {info['out_bytes']}; "
                             "it was changed since: resume into a new --out file (the file is left as it is)")
            out.truncate(info["out_bytes"])
            out.seek(info["out_bytes"])
            out_bytes, write_header = info["out_bytes"], False
        else:
            out = open(out_path, "wb")
    except OSError as exc:
        if infile is not None:
            infile.close()
        return _fail(f"cannot open --out {args.out}: {exc.strerror or exc}", 4)

    # -- run, stopping cleanly on SIGINT / SIGTERM --------------------------------------------
    def on_signal(signum, frame):
        stream.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = stream.run(lines, out, skip=skip, out_bytes=out_bytes, write_header=write_header)
    except BadRowError as exc:
        saved = (f"; the state before this row is saved in {args.checkpoint} (fix the row or use "
                 "--on-bad-row skip, then --resume)") if args.checkpoint else ""
        print(f"rtrl stream: error: {args.input}: {exc}{saved}", file=sys.stderr, flush=True)
        return exc.exit_code
    except DivergedError as exc:
        kept = (f"; the last good checkpoint {args.checkpoint} is left as it was (restart with a lower --lr "
                "or --clip-norm and --resume)") if args.checkpoint else ""
        print(f"rtrl stream: error: {exc} (--lr, --clip-norm){kept}", file=sys.stderr, flush=True)
        return exc.exit_code
    except WriteError as exc:
        return _fail(_flagged(exc, args), exc.exit_code)
    except StreamError as exc:
        return _fail(f"{args.input}: {exc}", exc.exit_code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if out_path is not None:
            try:
                out.close()
            except OSError:
                pass  # a failed final flush was reported by the run (the predictions were flushed row by row)
        if infile is not None:
            infile.close()

    # -- report -------------------------------------------------------------------------------
    how = "end of input" if result.stopped is None else f"stopped by {result.stopped}"
    parts = [f"{how}: {result.rows_this_run} rows this run, {result.rows_read} in all"]
    if result.checkpoint:
        parts.append(f"checkpoint {result.checkpoint}")
    _note("; ".join(parts))
    if result.bad_rows_this_run:
        _note(f"skipped {result.bad_rows_this_run} bad rows this run ({result.bad_rows} in all)"
              + "".join(f"\n  {e}" for e in result.bad_examples)
              + ("\n  ..." if result.bad_rows_this_run > len(result.bad_examples) else ""))
    if result.clipped_targets_this_run:
        _note(f"clipped {result.clipped_targets_this_run} targets to the range of the units this run "
              f"({result.clipped_targets} in all)")
    if result.stopped == "output closed" and out_path is None:
        # The reader went away; point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
