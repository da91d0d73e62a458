"""`xnorkit explore`: a design-space search over training and hardware. Optuna picks each trial's config
(NSGA-II or TPE, multi-objective) and keeps the study in its RDB storage (SQLite in STUDY/ by default); Ray runs
the trials (xnorkit.trial.run_trial), one task per trial holding one CPU, on this machine or on a Ray cluster.
Rerunning the command resumes the study; an interrupted trial is recorded failed and asked again."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xnorkit import outputs, tools
from xnorkit import space as space_mod
from xnorkit.errors import XnorkitError

STUDY_NAME = "xnorkit"
INTERRUPTED = "interrupted: the explore command ended while the trial ran; asked again on the next run"
CPUS_PER_TRIAL = 1


@dataclass
class Counts:
    """The study as the progress line shows it."""

    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    front: list[list[float]] = field(default_factory=list)  # the objectives' values of the Pareto trials

    def line(self) -> str:
        front = "; ".join("(" + ", ".join(f"{v:.4g}" for v in values) + ")" for values in self.front[:4])
        return (f"{self.running} running, {self.complete} complete, {self.pruned} pruned, {self.failed} failed"
                + (f"; front {front}{' ...' if len(self.front) > 4 else ''}" if front else ""))


def storage_url(study: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(Path(study) / 'study.db').absolute()}"


def open_study(study: Path, space: space_mod.Space | None, storage: str | None = None):
    """The Optuna study in `storage` (a new one, or the one this search space made before: a different space
    is refused)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(study, storage)
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as e:  # a bad URL, an unreachable server: SQLAlchemy's and Optuna's own errors
        raise XnorkitError(f"cannot open the study storage {url}: {str(e).splitlines()[0][:300]}") from None
    if space is None:
        try:
            return optuna.load_study(study_name=STUDY_NAME, storage=rdb)
        except KeyError:
            raise XnorkitError(f"{study} holds no xnorkit study; run `xnorkit explore SPACE.yaml -o {study}`") from None
    study_obj = optuna.create_study(study_name=STUDY_NAME, storage=rdb, directions=space.directions,
                                    load_if_exists=True)
    # a resumed study draws on from where it stopped: the seed moves on with the trials it holds (the same seed
    # again would ask the first trials' parameters again)
    seed = space.search.seed + len(study_obj.get_trials(deepcopy=False))
    study_obj.sampler = (optuna.samplers.NSGAIISampler(population_size=space.search.population, seed=seed)
                         if space.search.sampler == "nsga2"
                         else optuna.samplers.TPESampler(seed=seed, multivariate=True))
    made_from = study_obj.user_attrs.get("space")
    if made_from is None:
        study_obj.set_user_attr("space", _space_record(space))
    elif made_from != _space_record(space):
        raise XnorkitError(f"the study in {url} was made from another search space; name a new study folder "
                           "(-o) or --storage, or rerun it with the space it was made from")
    return study_obj


def _engine_kwargs(url: str) -> dict:
    # SQLite: wait for the lock rather than fail while another connection writes
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def _space_record(space: space_mod.Space) -> dict:
    return {"base": space.base, "search": space.search.model_dump()}


def recover(study_obj) -> int:
    """Trials left running by a command that was killed outright: recorded failed, their parameters asked again."""
    import optuna

    stale = study_obj.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        _requeue(study_obj, t.params, t._trial_id)
    return len(stale)


def _requeue(study_obj, params: dict, trial_id: int) -> None:
    import optuna

    study_obj.enqueue_trial(params, skip_if_exists=False)
    study_obj._storage.set_trial_user_attr(trial_id, "error", INTERRUPTED)
    study_obj._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def finished(study_obj) -> int:
    """Trials that count towards the study's size: complete, pruned, or failed for a reason of their own."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study_obj.get_trials(deepcopy=False, states=states)
               if t.user_attrs.get("error") != INTERRUPTED)


def counts(study_obj, running: int) -> Counts:
    import optuna

    state = optuna.trial.TrialState
    trials = study_obj.get_trials(deepcopy=False)
    failed = sum(1 for t in trials if t.state == state.FAIL and t.user_attrs.get("error") != INTERRUPTED)
    complete = [t for t in trials if t.state == state.COMPLETE]
    return Counts(running, len(complete), sum(1 for t in trials if t.state == state.PRUNED), failed,
                  [t.values for t in study_obj.best_trials] if complete else [])


def start_ray(address: str | None, workers: int | None) -> tuple[bool, int]:
    """Connect to `address` (a cluster started with `ray start`) or start Ray on this machine with `workers` CPUs;
    an already connected Ray (a test's cluster, a notebook) is used as it is. Returns (started here, slots)."""
    import ray

    started = not ray.is_initialized()
    if started:
        # Ray's driver takes SIGTERM for itself (it exits at once, status 15): ours come back after ray.init, so
        # an interrupt still records the running trials and stops Ray
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=address, num_cpus=None if address else (workers or None), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise XnorkitError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0][:300]}; "
                               "start one with `ray start --head` or leave --address out") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return started, max(1, min(workers or cpus, cpus) // CPUS_PER_TRIAL)


def _trial_folder(study: Path, number: int) -> Path:
    return Path(study).absolute() / "trials" / str(number)


def run(space_path: Path, study: Path, trials: int | None = None, workers: int | None = None,
        address: str | None = None, storage: str | None = None, data_dir: Path | None = None,
        progress: Callable[[Counts], None] | None = None) -> dict:
    """Run the study until it holds `trials` finished trials (default search.trials); returns its summary."""
    tools.require_extra("ray", "optuna", "sqlalchemy")
    space = space_mod.load(space_path)
    study = Path(study)
    outputs.check_folder(study, ("explore",))
    study.mkdir(parents=True, exist_ok=True)
    outputs.write_file(study / outputs.MARKER, "explore\n")
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(study / ".explore.lock"), timeout=0):
            return _run_locked(space, study, trials or space.search.trials, workers, address, storage, data_dir,
                               progress)
    except Timeout:
        raise XnorkitError(f"another `xnorkit explore` is running on {study}; wait for it or name another "
                           "folder") from None


def _run_locked(space, study: Path, total: int, workers, address, storage, data_dir, progress) -> dict:
    import ray

    from xnorkit.quant_train import data as data_mod

    study_obj = open_study(study, space, storage)
    if storage:  # where `xnorkit report STUDY` finds the study
        outputs.write_file(study / "storage.txt", storage + "\n")
    recover(study_obj)
    t0 = time.perf_counter()
    started, slots = start_ray(address, workers)
    seconds = {"ray_start": time.perf_counter() - t0}
    remote = ray.remote(num_cpus=CPUS_PER_TRIAL, max_retries=0)(_trial_task)
    data = str(data_mod.data_dir(data_dir).absolute())
    pending: dict = {}  # Ray's reference -> the Optuna trial it runs
    try:
        while pending or finished(study_obj) + len(pending) < total:
            while len(pending) < slots and finished(study_obj) + len(pending) < total:
                trial = study_obj.ask()
                params = space.suggest(trial)
                if not _reuse(study_obj, trial, params):
                    pending[_submit(remote, space, study, trial, params, data)] = trial
            if progress:
                progress(counts(study_obj, len(pending)))
            ready = ray.wait(list(pending), num_returns=1, timeout=2.0)[0] if pending else []
            for ref in ready:
                _record(study_obj, pending.pop(ref), ref)
    except BaseException:  # an interrupt (SIGINT, SIGTERM) or an error of the driver: the running trials go back
        # (their tasks end with the driver, their owner, at ray.shutdown; ray.cancel(force=True) can race a task
        # that is finishing and abort the driver)
        for trial in pending.values():
            _requeue(study_obj, trial.params, trial._trial_id)
        raise
    finally:
        if started:
            t0 = time.perf_counter()
            ray.shutdown()
            seconds["ray_stop"] = time.perf_counter() - t0
    if progress:
        progress(counts(study_obj, 0))
    from xnorkit import study_report

    t0 = time.perf_counter()
    study_report.write(study)
    seconds["report"] = time.perf_counter() - t0
    return study_report.summary(study_obj, study) | {"seconds": {k: round(v, 2) for k, v in seconds.items()}}


def _reuse(study_obj, trial, params: dict) -> bool:
    """A trial with the parameters of a finished one (small discrete spaces repeat) takes its figures, without
    training again: the same config and seed give the same figures."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    same = next((t for t in study_obj.get_trials(deepcopy=False, states=done) if t.params == params), None)
    if same is None:
        return False
    for key in ("folder", "figures", "error"):
        if key in same.user_attrs:
            trial.set_user_attr(key, same.user_attrs[key])
    trial.set_user_attr("same_as", same.number)
    if same.state == optuna.trial.TrialState.COMPLETE:
        study_obj.tell(trial, same.values)
    else:
        study_obj.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return True


def _submit(remote, space: space_mod.Space, study: Path, trial, params: dict, data_dir: str):
    folder = _trial_folder(study, trial.number)
    trial.set_user_attr("folder", str(folder))
    s = space.search
    config = space.config(params)
    # trained on the CPUs the task holds; the count goes into config.yaml, so `xnorkit flow` repeats it exactly
    config.setdefault("train", {}).setdefault("threads", CPUS_PER_TRIAL)
    return remote.remote(config, str(folder), space.objectives, s.board, s.constraints.model_dump(),
                         data_dir, s.trial_timeout_s)


def _trial_task(config: dict, folder: str, objectives: list[str], board: str | None, constraints: dict,
                data_dir: str, timeout: float | None) -> dict:
    """A Ray task: the trial (in a process of its own, stopped after `timeout` seconds, when there is a limit),
    with an error turned into a failed trial's reason (one line) rather than raised."""
    import ray

    from xnorkit import trial as trial_mod

    args = {"config": config, "folder": folder, "objectives": objectives, "board": board,
            "constraints": constraints, "data_dir": data_dir}
    try:
        figures = trial_mod.run_limited(args, timeout) if timeout else trial_mod.run_trial(**args)
    except Exception as e:  # a training error, a tool that failed: the study goes on
        return trial_mod.failure(e)
    return figures | {"node": ray.get_runtime_context().get_node_id()}


def _record(study_obj, trial, ref) -> None:
    import optuna
    import ray

    state = optuna.trial.TrialState
    try:
        figures = ray.get(ref)
    except ray.exceptions.RayError as e:  # the worker died (out of memory, a lost node)
        figures = {"state": "fail", "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"}
    trial.set_user_attr("figures", {k: v for k, v in figures.items() if k != "folding"})
    if figures["state"] == "complete":
        study_obj.tell(trial, figures["values"])
    else:
        trial.set_user_attr("error", figures["reason"])
        study_obj.tell(trial, state=state.PRUNED if figures["state"] == "pruned" else state.FAIL)

