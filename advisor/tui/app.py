"""The tunewise app: navigation between screens and the state of the current consultation.

Screens call the app's ``start_*`` / ``show_*`` / ``ask_*`` methods to move on; each screen
module is imported when first shown so that the welcome screen paints without loading the rest
(and never torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from tunewise.advisor.tui.screens.welcome import WelcomeScreen

if TYPE_CHECKING:
    from tunewise.advisor.tui.consultation import Consultation
    from tunewise.advisor.tui.run_watch import RunHandle, RunProcess, RunState


class TunewiseApp(App[int]):
    """``tunewise`` with no command. ``answers``/``run_dir`` open saved answers or a run at start."""

    CSS_PATH = "app.tcss"
    TITLE = "tunewise"
    # Textual's command palette offers nothing tunewise's keys do not, and its footer entry pushed
    # "f1 Help" off an 80-column footer.
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("t", "try_it", "Try it", show=False),  # on a finished run's screen (the results list it)
        Binding("a", "ask", "Ask a RAG run's index", show=False),  # on a finished RAG run's screen
    ]

    def __init__(self, *, answers: Path | None = None, run_dir: Path | None = None,
                 labeling: tuple[Path, Path, str | None] | None = None,
                 decisions_dir: Path | None = None, workdir: Path | None = None) -> None:
        super().__init__()
        self.initial_answers = answers
        self.initial_run_dir = run_dir
        self.initial_labeling = labeling
        self.decisions_dir = decisions_dir
        self.workdir = Path(workdir) if workdir else Path.cwd()
        """Where plans and runs of this session go by default."""
        self.consultation: Consultation | None = None
        self.runs: dict[Path, RunProcess] = {}
        self.plugin_failures: list[str] = []

    def on_mount(self) -> None:
        self.push_screen(WelcomeScreen())
        if self.initial_answers is not None:
            self.open_answers(self.initial_answers)
        elif self.initial_run_dir is not None:
            self.watch_run(self.initial_run_dir)
        elif self.initial_labeling is not None:
            self.show_preferences(*self.initial_labeling)

    # -- plugins -------------------------------------------------------------------------------

    def load_plugins(self) -> str:
        """Load plugins (a worker calls this); failures go to a notification, never a crash."""
        from tunewise.plugins.manager import get_host

        host = get_host()
        methods = host.methods
        self.plugin_failures = [failure.describe() for failure in host.failures]
        if self.plugin_failures:
            shown = "\n".join(f"• {text}" for text in self.plugin_failures[:5])
            more = f"\n… and {len(self.plugin_failures) - 5} more" if len(self.plugin_failures) > 5 else ""
            self.call_from_thread(
                self.notify, f"{shown}{more}\n`tunewise plugins` lists them all.", markup=False,
                title=f"{len(self.plugin_failures)} plugin problem(s): skipped", severity="warning", timeout=15,
            )
        summary = f"{len(methods)} methods: " + ", ".join(cls.title for cls in methods.values())
        if self.plugin_failures:
            from rich.markup import escape

            summary += (f"\n[$warning]⚠ {len(self.plugin_failures)} plugin problem(s), skipped: "
                        f"{escape(self.plugin_failures[0])}[/]")
        return summary

    # -- consultation ----------------------------------------------------------------------------

    def start_consultation(self, answers: dict[str, Any] | None = None, source: Path | None = None) -> None:
        from tunewise.advisor.tui.consultation import Consultation

        self.consultation = Consultation.start(answers or {}, source=source, decisions_dir=self.decisions_dir)
        self.show_topic(0)

    def show_topic(self, index: int) -> None:
        from tunewise.advisor.tui.screens.interview import InterviewScreen

        assert self.consultation is not None
        stack = self.screen_stack
        for position, screen in enumerate(stack):
            if isinstance(screen, InterviewScreen) and screen.index == index:
                for _ in range(len(stack) - 1 - position):  # back to it: later topics keep their answers
                    self.pop_screen()
                return
        self.push_screen(InterviewScreen(index))

    def ask_answers_file(self) -> None:
        from tunewise.advisor.tui.screens.dialogs import PathDialog

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.open_answers(path)

        self.push_screen(PathDialog("Open saved answers (YAML)", placeholder="examples/answers/….yaml"), chosen)

    def open_answers(self, path: Path) -> None:
        from tunewise.advisor.tui.consultation import load_answers_file
        from tunewise.advisor.tui.screens.dialogs import ErrorDialog

        try:
            answers = load_answers_file(Path(path))
        except Exception as exc:
            self.push_screen(ErrorDialog.for_exception(f"Cannot open {path}", exc))
            return
        self.start_consultation(answers, source=Path(path))
        self.notify(f"Answers from {path}: check each topic, ctrl+r jumps to the recommendations.",
                    title="answers loaded")

    def after_interview(self) -> None:
        """Data audit when a data path was given, else straight to the recommendations."""
        assert self.consultation is not None
        if self.consultation.data_path() is not None:
            from tunewise.advisor.tui.screens.audit import AuditScreen

            self.push_screen(AuditScreen())
        else:
            self.show_recommendations()

    def show_recommendations(self) -> None:
        from tunewise.advisor.tui.screens.recommendations import RecommendationsScreen

        self.push_screen(RecommendationsScreen())

    def show_plan(self, method_id: str) -> None:
        from tunewise.advisor.tui.screens.plan import PlanScreen

        self.push_screen(PlanScreen(method_id))

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, plan_path: Path, out_dir: Path, *, resume: bool = False) -> RunProcess:
        """Start ``tunewise run`` for ``plan_path`` in the background (it outlives the app)."""
        from tunewise.advisor.tui.run_watch import RunProcess

        process = RunProcess(plan_path, out_dir, resume=resume)
        process.start()
        self.runs[Path(out_dir).resolve()] = process
        return process

    def show_run(self, run_dir: Path, process: RunHandle | None = None) -> None:
        from tunewise.advisor.tui.screens.run import RunScreen

        run_dir = Path(run_dir)
        process = process or self.runs.get(run_dir.resolve())
        if process is None:
            from tunewise.advisor.tui.run_watch import AttachedRun, launched_pid

            pid = launched_pid(run_dir)
            if pid is not None:  # started by an earlier app session and still going
                process = AttachedRun(run_dir, pid)
        self.push_screen(RunScreen(run_dir, process))

    def watch_run(self, run_dir: Path) -> None:
        from tunewise.advisor.tui.run_watch import EVENTS_FILE, launched_plan

        run_dir = Path(run_dir)
        if not (run_dir / EVENTS_FILE).exists() and launched_plan(run_dir) is None:
            self.notify(f"{run_dir} has no {EVENTS_FILE} and no plan: not a tunewise run folder.",
                        severity="error")
            return
        self.show_run(run_dir)

    def ask_run_dir(self) -> None:
        from tunewise.advisor.tui.screens.dialogs import PathDialog

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.watch_run(path)

        self.push_screen(PathDialog("Run folder to follow or resume", placeholder="runs/…", want="dir"), chosen)

    def record_run_outcome(self, run_dir: Path, state: RunState) -> None:
        if self.consultation is not None:
            self.consultation.record_run(run_dir, state)

    def show_results(self, run_dir: Path) -> None:
        from tunewise.advisor.tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen(run_dir))

    def show_try_it(self, run_dir: Path) -> None:
        """The base and the run's result answering prompts side by side."""
        from tunewise.advisor.tui.screens.try_it import TryItScreen

        started_here = Path(run_dir).resolve() in self.runs  # its outside paths were the user's own choice
        self.push_screen(TryItScreen(Path(run_dir), allow_outside_paths=True if started_here else None))

    def show_ask(self, index_dir: Path | None = None) -> None:
        """Questions to an index with citations: ``index_dir`` is an index or a RAG run folder (None: asked for)."""
        from tunewise.advisor.tui.screens.ask import AskScreen

        started_here = index_dir is not None and Path(index_dir).resolve() in self.runs
        self.push_screen(AskScreen(index_dir, allow_outside_paths=True if started_here else None))

    def action_ask(self) -> None:
        """``a`` on the run screen of a finished RAG run: questions to its index (see :meth:`show_ask`)."""
        from tunewise.advisor.tui.screens.run import RunScreen

        screen = self.screen
        if not isinstance(screen, RunScreen):
            return
        if screen.state.method != "rag":
            self.notify(f"Ask needs a RAG run (this is a {screen.state.method or 'unknown'} run); Welcome → a asks "
                        "any index.", severity="warning")
            return
        if not screen.state.finished:
            self.notify("The run is still going; ask its index once it has finished.", severity="warning")
            return
        self.show_ask(screen.run_dir)

    def action_try_it(self) -> None:
        """``t`` on the run screen of a finished run (``tunewise --run DIR``, then ``t``)."""
        from tunewise.advisor.tui.screens.run import RunScreen

        screen = self.screen
        if not isinstance(screen, RunScreen):
            return
        if screen.state.status != "completed":
            self.notify("Try it needs a completed run.", severity="warning")
            return
        self.show_try_it(screen.run_dir)

    # -- preferences -----------------------------------------------------------------------------

    def ask_labeling(self) -> None:
        from tunewise.advisor.tui.screens.dialogs import PathDialog

        def prompts_chosen(prompts: Path | None) -> None:
            if prompts is None:
                return

            def out_chosen(out: Path | None) -> None:
                if out is not None:
                    self.show_preferences(prompts, out)

            default_out = prompts.with_name(prompts.stem + ".prefs.jsonl")
            self.push_screen(PathDialog("Save preferences to (appended; reopening resumes)",
                                        value=str(default_out), must_exist=False), out_chosen)

        self.push_screen(PathDialog("Prompts to label (.jsonl, .json or .txt)"), prompts_chosen)

    def show_preferences(self, prompts: Path, out: Path, model: str | None = None) -> None:
        from tunewise.advisor.tui.screens.preferences import PreferencesScreen

        self.push_screen(PreferencesScreen(prompts, out, model=model))

    # -- navigation ------------------------------------------------------------------------------

    def go_home(self) -> None:
        """Back to the welcome screen (the bottom of the stack)."""
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_help(self) -> None:
        from tunewise.advisor.tui.screens.keys_help import KeysHelp

        if not isinstance(self.screen, KeysHelp):  # F1 again closes it (its own binding), never stacks
            self.push_screen(KeysHelp())
