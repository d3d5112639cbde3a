"""The `watchkeeper` command: validate, generate, test, check, deploy, import, schema.

Exit status: 0 success, 1 when generated tests fail, 2 for bad input (the spec, the
arguments, a missing tool), 70 (sysexits' EX_SOFTWARE) for a bug found in watchkeeper
itself on a valid spec (or a worker process killed under it), 130 and 143 when stopped
by SIGINT and SIGTERM (what the run had staged removed, the output as it was). User errors
print one line per problem and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from watchkeeper import promtool
from watchkeeper.results_cache import CacheError, ResultsCache

if TYPE_CHECKING:
    from watchkeeper import load, shard, writers

# Imported by the commands that use them, not here: the spec models (pydantic), grafanalib
# and requests cost ~0.3 s of start-up that `watchkeeper test` and `check` never need;
# `check` (its module) and `writers` are not needed by `test` either (~0.1 s), nor `shard`
# (it loads the model) or the backtest's modules (urllib, http.client) to parse arguments.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
CACHE_DIR = ".watchkeeper-cache"  # under the folder `watchkeeper test` is given
OUTPUT_FOLDERS = ("alerts", "dashboards")  # = generate.OUTPUTS (a test keeps them equal)
DEFAULT_FOLDER_UID, DEFAULT_FOLDER_TITLE = "watchkeeper", "watchkeeper"  # = deploy's (tested)


class UsageError(Exception):
    """Bad arguments or environment: printed as one line, exit status 2."""


def _ext_vars(pairs: Sequence[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--ext-str expects KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


def _load(args: argparse.Namespace, store: bool = False):
    """The resolved spec of `args.spec` (`store`: its services kept on disk, see
    load.load_spec)."""
    from watchkeeper.load import load_spec

    _load_arguments(args)
    return load_spec(args.spec, _ext_vars(args.ext_str), store=store)


def _load_arguments(args: argparse.Namespace) -> None:
    """--ext-str only means something to Jsonnet."""
    if args.ext_str and Path(args.spec).suffix not in (".jsonnet", ".libsonnet"):
        raise UsageError(f"--ext-str sets Jsonnet external variables, but {args.spec} is not a "
                         ".jsonnet file; remove --ext-str or use a Jsonnet spec")


def _shard(text: str) -> shard.Shard:
    from watchkeeper import shard

    try:
        return shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load(args)
    print(f"{args.spec}: valid, {len(spec.services)} service(s): "
          + ", ".join(s.name for s in spec.services))
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    """Render into staging folders as each file is ready, then move into place only the
    files watchkeeper owns (see writers.commit); a problem there changes nothing.

    The spec is read while the workers render its first services (`load.Loading`), so
    the output folder and its staging folders exist before the spec is known to be good:
    on a bad spec, the folders this run made (still empty) go again."""
    from watchkeeper import build_cache, shard, writers
    from watchkeeper.generate import Reread, generate
    from watchkeeper.load import Loading, SpecError
    from watchkeeper.model import service_names

    _load_arguments(args)
    # read as the workers render: its services on disk, workers read their own
    loading = Loading(args.spec, _ext_vars(args.ext_str))
    only = tuple(args.only) if args.only else OUTPUT_FOLDERS
    out = Path(args.out)
    made = [folder for folder in (out, *(out / name for name in only))
            if not os.path.lexists(folder)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        # services unchanged since the last run are not built again (not when sharding: a
        # shard's run keeps only some of what it stages)
        reuse = None if args.shard else build_cache.load(out, Path(args.spec).name, only)
        stage = writers.Stage.create(out, only)
    except BaseException:
        loading.close()
        raise
    try:
        # path → sha256 of each file written, kept on disk (`out`'s) rather than in memory
        try:
            written = generate(loading, Path(args.spec).name, only, sink=stage.put,
                               reuse=reuse, into=writers.Written(out))
        except Reread as again:  # what the workers staged is not the spec's: start over
            stage.discard()
            stage = writers.Stage.create(out, only)
            written = generate(again.spec, Path(args.spec).name, only, sink=stage.put,
                               reuse=reuse, into=writers.Written(out))
        spec = loading.spec()  # read by now
        if args.shard:  # staged files of other shards go with the stage
            names = service_names(spec.services)
            written = written.select(shard.keeps(names, args.shard))
            mine = [n for n, i in shard.assignment(names, args.shard.count).items()
                    if i == args.shard.index]
            print(f"shard {args.shard}: {len(mine)} of {len(names)} service(s): "
                  + (", ".join(mine) or "none"))
        with _signals_held():  # moved into place whole, or not at all, with its record
            done = writers.commit(stage, written, discard_edits=args.discard_edits)
            if reuse is not None:
                build_cache.save(reuse)
    except SpecError:
        stage.discard()
        for folder in reversed(made):  # made by this run for a spec that was bad: empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        stage.discard()
        loading.close()
    print(_summary(done, len(spec.services), [f"{out / folder}/" for folder in only]))
    return EXIT_OK


def _summary(done: writers.Committed, services: int, folders: Sequence[str]) -> str:
    """``wrote W files for S service(s) into F/[; U unchanged][; removed R no longer
    generated]``: W new or changed files, U generated files that already held their bytes
    (a warm run: every file), as the commit counted them."""
    files, wrote = sum(done.files.values()), sum(done.written.values())
    gone = sum(done.removed.values())
    return (f"wrote {wrote} files for {services} service(s) into " + ", ".join(folders)
            + (f"; {files - wrote} unchanged" if files > wrote else "")
            + (f"; removed {gone} no longer generated" if gone else ""))


def _open_cache(args: argparse.Namespace) -> ResultsCache | None:
    folder = Path(args.cache_dir) if args.cache_dir else Path(args.dir) / CACHE_DIR
    try:
        return ResultsCache(folder, promtool.version())
    except CacheError as error:
        print(f"watchkeeper: {error}", file=sys.stderr)
        return None


class _Cached:
    """Files of one kind of promtool run (`label`): their cache keys, and which passed
    before with the same key (not run again unless --all)."""

    def __init__(self, label: str, files: list[Path], key_of: Callable[[Path], str | None]
                 | None, cache: ResultsCache | None, args: argparse.Namespace) -> None:
        self.label, self.files, self.cache = label, files, cache
        self.keys = {file: key_of(file) if cache and key_of else None for file in files}
        self.cached = {file for file in files
                       if cache and not args.all and cache.hit(self.keys[file])}
        self.to_run = [f for f in files if f not in self.cached]

    def report(self, result: promtool.Result) -> tuple[int, int, int]:
        """Print one line per file and remember passes; (passed, failed, from cache)."""
        outcome = {f.file: f for f in result.files}
        passed = failed = 0
        for file in self.files:
            if file in self.cached:
                print(f"ok   {self.label}: {file} (cached)")
                passed += 1
                continue
            found = outcome.get(str(file))
            ok = found is not None and found.ok
            if self.cache:
                self.cache.record(self.keys[file], ok)
            print(f"{'ok  ' if ok else 'FAIL'} {self.label}: {file}")
            for line in found.details if found and not ok else ():
                print(f"       {line}")
            passed, failed = passed + ok, failed + (not ok)
        if not result.ok and len(result.files) < len(self.to_run):
            print(result.output.rstrip())  # promtool failed before naming some files
            failed = max(failed, 1)
        return passed, failed, len(self.cached)


def cmd_test(args: argparse.Namespace) -> int:
    alerts = Path(args.dir) / "alerts"
    rule_files = sorted(alerts.glob("*.rules.yml"))
    test_files = sorted((alerts / "tests").glob("*.test.yml"))
    if not rule_files:
        raise UsageError(f"no rule files in {alerts}/; run `watchkeeper generate` first")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    def plan() -> tuple[ResultsCache | None, _Cached, _Cached]:
        cache = _open_cache(args) if not args.no_cache else None
        return (cache,
                _Cached("check rules", rule_files, cache.check_key if cache else None, cache, args),
                _Cached("test rules", test_files, cache.test_key if cache else None, cache, args))

    # one pool for both: the checks run beside the tests' last batches, not before them
    if args.all:  # every file runs: promtool starts first, the keys to record meanwhile
        with ThreadPoolExecutor(1) as background:
            running = background.submit(promtool.check_and_test, rule_files, test_files,
                                        jobs=args.jobs)
            cache, checks, tests = plan()
            checked, tested = running.result()
    else:
        cache, checks, tests = plan()
        checked, tested = promtool.check_and_test(checks.to_run, tests.to_run, jobs=args.jobs)
    totals = [checks.report(checked)] + ([tests.report(tested)] if test_files else [])
    passed, failed, reused = (sum(column) for column in zip(*totals, strict=True))
    if cache:
        try:
            cache.save()
        except OSError as error:
            print(f"watchkeeper: cache not saved: {error.strerror}: {error.filename}",
                  file=sys.stderr)
    print(f"promtool: {passed} passed, {failed} failed"
          + (f" ({reused} unchanged, passed before: not re-run)" if reused else ""))
    return EXIT_OK if failed == 0 else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    from watchkeeper import check

    root = Path(args.dir)
    if not check.dashboard_files(root):
        raise UsageError(f"no dashboards in {root / 'dashboards'}/; run `watchkeeper generate` "
                         "first")
    report = check.check(root)
    for problem in report.problems:
        print(f"FAIL {problem}")
    print(f"check: {report.dashboards} dashboards, {report.queries} queries, {report.links} "
          f"alert links: {len(report.problems)} problem(s)")
    return EXIT_OK if not report.problems else EXIT_FAILED


def cmd_deploy(args: argparse.Namespace) -> int:
    from watchkeeper import deploy

    env = os.environ
    if args.offline:
        if not args.dry_run:
            raise UsageError("--offline plans against an empty Grafana and applies nothing; "
                             "add --dry-run")
        client: deploy.Client | deploy.OfflineClient = deploy.OfflineClient()
    else:
        client = deploy.Client(deploy.base_url(args.url, env),
                               deploy.credentials(env, args.token_file), timeout=args.timeout)
    options = deploy.Options(folder_uid=args.folder_uid, folder_title=args.folder_title,
                             dry_run=args.dry_run, force=args.force, prune=args.prune)
    failures = deploy.run(Path(args.dir), client, options, lambda line: print(line, flush=True))
    return EXIT_OK if failures == 0 else EXIT_FAILED


def cmd_backtest(args: argparse.Namespace) -> int:
    from watchkeeper.backtest import client, command

    try:
        return command.run(args, _ext_vars(args.ext_str))
    except client.BacktestError as error:
        for line in str(error).splitlines():
            print(f"watchkeeper: {line}", file=sys.stderr)
        return EXIT_USAGE


def cmd_schema(args: argparse.Namespace) -> int:
    from watchkeeper.spec import SpecFile

    schema = SpecFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "watchkeeper spec (version 1)"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Print (or write with -o) the watchkeeper spec translated from a Sloth/OpenSLO file."""
    from watchkeeper.importers import HEADER, openslo, sloth

    text = {"sloth": sloth.convert, "openslo": openslo.convert}[args.format](args.file)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.output)
    marker = HEADER.split("{")[0]
    if out.exists() and not out.read_text(encoding="utf-8").startswith(marker):
        raise UsageError(f"{out} exists and was not written by `watchkeeper import`; "
                         "not overwriting it")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return EXIT_OK


def _version() -> str:
    import importlib.metadata  # ~30 ms, for `--version` only

    try:
        return importlib.metadata.version("watchkeeper")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """argparse's `version` action, looking the version up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"watchkeeper {_version()}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    # A command whose arguments come from a module worth importing only when that command
    # runs (or its help is asked for): called with this parser before it parses.
    add_arguments_later: Callable[[argparse.ArgumentParser], None] | None = None

    def parse_known_args(self, args=None, namespace=None):
        if self.add_arguments_later is not None:
            add, self.add_arguments_later = self.add_arguments_later, None
            add(self)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its one-line style
        self.print_usage(sys.stderr)
        print(f"watchkeeper: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="watchkeeper", description=__doc__.splitlines()[0])
    root.add_argument("--version", action=_VersionAction)
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def spec_command(name: str, help_text: str, handler) -> _Parser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("spec", help="spec file (.yaml, .yml or .jsonnet)")
        command.add_argument("--ext-str", action="append", default=[], metavar="KEY=VALUE",
                             help="Jsonnet external variable (repeatable)")
        command.set_defaults(handler=handler)
        return command

    spec_command("validate", "check a spec and report every problem", cmd_validate)
    gen = spec_command("generate", "write alerts/ (and other outputs) for a spec", cmd_generate)
    gen.add_argument("--out", default=".", help="folder that receives alerts/ (default .)")
    gen.add_argument("--only", action="append", choices=sorted(OUTPUT_FOLDERS),
                     help="generate only this output folder (repeatable)")
    gen.add_argument("--discard-edits", action="store_true",
                     help="overwrite generated files edited by hand (files watchkeeper did not "
                     "write are never touched)")
    gen.add_argument("--shard", type=_shard, metavar="I/N",
                     help="write only the rule and test files of the services shard I of N "
                     "evaluates (stable by service name; shared files are written whole)")
    test = commands.add_parser(
        "test", help="promtool check + test the generated rules",
        description="promtool check + test the generated rules, on every core. Files that "
        "passed before with the same contents (and the same promtool) are not re-run: passes "
        f"are remembered in DIR/{CACHE_DIR}/ (safe to delete; see --cache-dir).")
    test.add_argument("dir", nargs="?", default=".", help="folder holding alerts/ (default .)")
    test.add_argument("--all", action="store_true",
                      help="re-run every check and test, even those that passed unchanged")
    test.add_argument("--jobs", "-j", type=int, metavar="N",
                      help="promtool processes at once (default: one per core)")
    test.add_argument("--cache-dir", metavar="DIR",
                      help=f"where passes are remembered (default DIR/{CACHE_DIR})")
    test.add_argument("--no-cache", action="store_true",
                      help="neither read nor write the cache")
    test.set_defaults(handler=cmd_test)
    chk = commands.add_parser("check", help="cross-check dashboards against the rules")
    chk.add_argument("dir", nargs="?", default=".",
                     help="folder holding dashboards/ and alerts/ (default .)")
    chk.set_defaults(handler=cmd_check)
    dep = commands.add_parser("deploy", help="plan and apply dashboards/ to Grafana",
                              description="Plan and apply DIR/dashboards/*.json to Grafana. "
                              "Credentials: GRAFANA_TOKEN, --token-file (or GRAFANA_TOKEN_FILE), "
                              "or GRAFANA_USER and GRAFANA_PASSWORD (or GRAFANA_PASSWORD_FILE).")
    dep.add_argument("dir", nargs="?", default=".", help="folder holding dashboards/ (default .)")
    dep.add_argument("--url", help="Grafana base URL (default $GRAFANA_URL)")
    dep.add_argument("--token-file", help="file holding a service-account token")
    dep.add_argument("--folder-uid", default=DEFAULT_FOLDER_UID,
                     help="folder receiving the dashboards (created when missing)")
    dep.add_argument("--folder-title", default=DEFAULT_FOLDER_TITLE)
    dep.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    dep.add_argument("--offline", action="store_true",
                     help="with --dry-run: plan against an empty Grafana, without URL or "
                     "credentials (what a first deploy would create)")
    dep.add_argument("--force", action="store_true",
                     help="overwrite dashboards edited in Grafana (drift)")
    dep.add_argument("--prune", action="store_true",
                     help="delete managed dashboards that are no longer generated")
    dep.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    dep.set_defaults(handler=cmd_deploy)
    imp = commands.add_parser("import", help="translate Sloth or OpenSLO SLOs into a spec",
                              description="Translate a Sloth prometheus/v1 file or OpenSLO "
                              "SLO documents into a watchkeeper spec (stdout, or -o FILE).")
    imp.add_argument("format", choices=("sloth", "openslo"))
    imp.add_argument("file", help="the Sloth or OpenSLO YAML file")
    imp.add_argument("-o", "--output", help="write the spec here instead of stdout")
    imp.set_defaults(handler=cmd_import)
    spec_command("backtest", "replay the spec's alerts over a Prometheus' history",
                 cmd_backtest).add_arguments_later = _backtest_arguments
    schema = commands.add_parser("schema", help="print the spec's JSON Schema")
    schema.set_defaults(handler=cmd_schema)
    return root


def _backtest_arguments(command: argparse.ArgumentParser) -> None:
    from watchkeeper.backtest.command import add_arguments

    add_arguments(command)


def _lazy_error(module: str, name: str) -> type[BaseException]:
    """An error class of a module imported only by some commands; when this run never
    imported the module, nothing can have raised it (and it is not imported to find out)."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name) if loaded is not None else _NeverRaised


class _NeverRaised(Exception):
    pass


class Terminated(BaseException):
    """SIGTERM (`kill`, a CI job's timeout), raised in the main thread as SIGINT raises
    KeyboardInterrupt: every `finally` and `with` on the way out runs, so staging folders,
    shelves and temporary folders go and the output stays as it was."""


# Exit statuses after SIGINT and SIGTERM, as a shell reports a process the signal killed.
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises `Terminated` in this process while the command runs (the handler in
    place before is put back after), and is passed on to its child processes (promtool
    runs, which it would otherwise wait for, and generate's workers): a process forked
    meanwhile dies of it at once, its parent cleans up. Once either has arrived, a second
    SIGTERM or SIGINT does not interrupt the clean-up (SIGKILL does): a KeyboardInterrupt
    in the middle of it would leave staging folders, or a pool's workers running."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield  # not ours to change (an embedding program's, or an ignored signal)
        return
    pid = os.getpid()
    interrupts = signal.getsignal(signal.SIGINT)
    ours_too = interrupts is signal.default_int_handler  # else ignored, or an embedder's

    def cleaning_up() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ours_too:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != pid:  # a forked worker
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        cleaning_up()
        for child in _children():
            with contextlib.suppress(OSError):
                os.kill(child, signum)
        raise Terminated

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() == pid:  # not a worker forked before it ignores SIGINT
            cleaning_up()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    if ours_too:
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if ours_too:
            signal.signal(signal.SIGINT, interrupts)


def _children() -> list[int]:
    """This process's child processes, started by any of its threads (Linux's /proc; none
    known elsewhere). Not yet waited for, so none of their pids can have been reused."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError):
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as listed:
                found.extend(int(pid) for pid in listed.read().split())
    return found


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (generate's commit: the output is
    swapped whole, not left half old, half new), then take effect as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {kind: signal.signal(kind, lambda signum, _: held.append(signum))
              for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in before.items():
            signal.signal(kind, handler)
        for kind in dict.fromkeys(held):
            os.kill(os.getpid(), kind)  # delivered now, to the handler put back


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: this process's, the `watchkeeper` command:
    its process then ends here, see `_exit`)."""
    args = parser().parse_args(argv)
    with _terminate_as_interrupt():
        code = _run(args)
    if argv is None:
        _exit(code)
    return code


def _exit(code: int) -> None:
    """End the `watchkeeper` process without tearing the interpreter down: freeing every
    module and object one by one took ~50 ms of a cold `generate` (a twentieth of its
    serial time, CPU too), and the system frees them at once. What an ordinary exit does
    that matters still happens: exit handlers run (weakref finalizers: spill folders), the
    output is flushed (failing that, 120 as Python's own exit). Not while a thread other
    than this one runs: the interpreter would wait for it."""
    if threading.active_count() > 1:
        return
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 120
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except Terminated:
        print("watchkeeper: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("watchkeeper: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _lazy_error("watchkeeper.load", "SpecError") as error:
        for problem in cast("load.SpecError", error).problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, _lazy_error("watchkeeper.deploy", "DeployError"),
            promtool.PromtoolMissing) as error:
        print(f"watchkeeper: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _lazy_error("watchkeeper.writers", "OwnershipError") as error:
        for message in cast("writers.OwnershipError", error).problems:
            print(f"error: {message}", file=sys.stderr)
        print("watchkeeper: nothing was changed", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"watchkeeper: {error.strerror}: {error.filename}", file=sys.stderr)
        return EXIT_USAGE
    except _lazy_error("concurrent.futures.process", "BrokenProcessPool"):
        # a worker killed (out of memory, `kill -9`): its parent cleaned up after it
        print("watchkeeper: a worker process ended abruptly (killed? out of memory?); "
              "nothing was changed", file=sys.stderr)
        return EXIT_INTERNAL
    except _lazy_error("watchkeeper.parts", "UndeclaredRead") as error:
        # a signal's own check failed on a valid spec (see parts.Declared): not the user's
        # to fix, but named, so it can be reported; generate's staging is discarded
        print(f"watchkeeper: internal error, please report it (your spec is not at fault): "
              f"{error}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
