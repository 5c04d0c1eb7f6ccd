"""The interactive `run` session: Ollama's `generateInteractive`, on Python's `input()`.

Ctrl+C while an answer streams stops that answer (the stream is closed, so the server stops
generating) and returns to the prompt; Ctrl+C at the prompt clears the line; Ctrl+D or /bye
ends the session with status 0.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

from trio_ollama.cli.answer import RunOptions, metrics_summary, stream_answer
from trio_ollama.cli.client import APIError, Client
from trio_ollama.cli.commands import list_models
from trio_ollama.cli.show import go_value, show_info
from trio_ollama.options import OptionError, format_params

PROMPT = ">>> "
ALT_PROMPT = "... "
QUOTES = '"""'

USAGE = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.

"""
USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats

"""
USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

"""
USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

"""
USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit (/bye)

"""


class Multiline(enum.Enum):
    NONE = enum.auto()
    PROMPT = enum.auto()
    SYSTEM = enum.auto()


def _line_buffer() -> str:
    try:
        import readline
    except ImportError:
        return ""
    return readline.get_line_buffer()


class Session:
    def __init__(self, client: Client, opts: RunOptions, info: dict[str, Any]) -> None:
        self.client = client
        self.opts = opts
        self.info = info
        self.buffer: list[str] = []
        self.multiline = Multiline.NONE
        self.alt = False

    def run(self) -> int:
        try:
            # Imported for its side effect: line editing and history for `input()`.
            import readline  # noqa: F401
        except ImportError:
            pass
        self.load()
        for message in self.info.get("messages") or []:
            if message.get("role") == "user":
                print(f"{PROMPT}{message.get('content', '')}")
            elif message.get("role") == "assistant":
                print(f"{message.get('content', '')}\n")
        while True:
            try:
                line = input(ALT_PROMPT if self.alt else PROMPT)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                if not _line_buffer():
                    print("\nUse Ctrl + d or /bye to exit.")
                else:
                    print()
                self.buffer.clear()
                self.multiline = Multiline.NONE
                self.alt = False
                continue
            if self.handle(line):
                return 0

    def load(self) -> None:
        """Load the model before the first prompt: a chat with no messages (Ollama's load)."""
        body: dict[str, Any] = {"model": self.opts.model, "messages": []}
        if self.opts.keep_alive is not None:
            body["keep_alive"] = self.opts.keep_alive
        stream_answer(self.client.stream("/api/chat", body), out=sys.stderr)

    # ----- one line of input; True ends the session

    def handle(self, line: str) -> bool:
        if self.multiline is not Multiline.NONE:
            before, closed = _cut_suffix(line, QUOTES)
            self.buffer.append(before)
            if not closed:
                self.buffer.append("\n")
                self.alt = True
                return False
            if self.multiline is Multiline.SYSTEM:
                self.set_system("".join(self.buffer))
                self.buffer.clear()
            self.multiline = Multiline.NONE
            self.alt = False
        elif line.startswith(QUOTES):
            text, closed = _cut_suffix(line.removeprefix(QUOTES), QUOTES)
            self.buffer.append(text)
            if not closed:
                self.buffer.append("\n")
                self.multiline = Multiline.PROMPT
                self.alt = True
        elif line.startswith(("/exit", "/bye")):
            return True
        elif line.startswith("/"):
            self.command(line)
            return False
        else:
            self.buffer.append(line)
        text = "".join(self.buffer)
        if text and self.multiline is Multiline.NONE:
            self.send(text)
            self.buffer.clear()
        elif self.multiline is Multiline.NONE:
            self.buffer.clear()  # an empty line sends nothing
        return False

    def command(self, line: str) -> None:
        args = line.split()
        verb = args[0]
        if verb.startswith("/list"):
            print(list_models(self.client, args[1] if len(args) > 1 else None), end="")
        elif verb.startswith("/load"):
            self.load_model(args)
        elif verb.startswith("/save"):
            self.save(args)
        elif verb.startswith("/clear"):
            self.opts.messages = []
            if self.opts.system:
                self.opts.messages.append({"role": "system", "content": self.opts.system})
            print("Cleared session context")
        elif verb.startswith("/set"):
            self.set(args)
        elif verb.startswith("/show"):
            self.show(args)
        elif verb.startswith(("/help", "/?")):
            topic = args[1] if len(args) > 1 else ""
            usage = {
                "set": USAGE_SET, "/set": USAGE_SET, "show": USAGE_SHOW, "/show": USAGE_SHOW,
                "shortcut": USAGE_SHORTCUTS, "shortcuts": USAGE_SHORTCUTS,
            }.get(topic, USAGE)  # fmt: skip
            sys.stderr.write(usage)
        else:
            print(f"Unknown command '{verb}'. Type /? for help")

    def set(self, args: list[str]) -> None:
        if len(args) < 2:
            sys.stderr.write(USAGE_SET)
            return
        what = args[1]
        if what in ("history", "nohistory"):
            return
        if what in ("wordwrap", "nowordwrap"):
            self.opts.wordwrap = what == "wordwrap"
            print(f"Set '{what}' mode.")
        elif what in ("verbose", "quiet"):
            self.opts.verbose = what == "verbose"
            print(f"Set '{what}' mode.")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                print("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                self.opts.format = "json"
                print("Set format to 'json' mode.")
        elif what == "noformat":
            self.opts.format = None
            print("Disabled format.")
        elif what == "parameter":
            if len(args) < 4:
                sys.stderr.write(USAGE_PARAMETERS)
                return
            name, values = args[2], args[3:]
            try:
                parsed = format_params({name: values})
            except OptionError as exc:
                print(f"Couldn't set parameter: {json.dumps(str(exc))}")
                return
            print(f"Set parameter '{name}' to '{', '.join(values)}'")
            if name in parsed:
                self.opts.options[name] = parsed[name]
        elif what == "system":
            if len(args) < 3:
                sys.stderr.write(USAGE_SET)
                return
            text = " ".join(args[2:])
            if text.startswith(QUOTES):
                text, closed = _cut_suffix(text.removeprefix(QUOTES), QUOTES)
                if not closed:
                    self.buffer.append(text + "\n")
                    self.multiline = Multiline.SYSTEM
                    self.alt = True
                    return
            self.set_system(text)
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def set_system(self, text: str) -> None:
        self.opts.system = text
        message = {"role": "system", "content": text}
        # A new system message replaces one just set rather than stacking up.
        if self.opts.messages and self.opts.messages[-1].get("role") == "system":
            self.opts.messages[-1] = message
        else:
            self.opts.messages.append(message)
        print("Set system message.")

    def show(self, args: list[str]) -> None:
        if len(args) < 2:
            sys.stderr.write(USAGE_SHOW)
            return
        body: dict[str, Any] = {"model": self.opts.model, "options": self.opts.options}
        if self.opts.system:
            body["system"] = self.opts.system
        try:
            resp = self.client.json("POST", "/api/show", body)
        except APIError as exc:
            print(f"error: couldn't get model: {exc.message}")
            return
        what = args[1]
        if what == "info":
            sys.stderr.write(show_info(resp))
        elif what == "license":
            print(resp.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            print(resp.get("modelfile", ""))
        elif what == "parameters":
            print("Model defined parameters:")
            params = resp.get("parameters") or ""
            if not params:
                print("  No additional parameters were specified for this model.")
            for row in params.split("\n") if params else []:
                print(f"  {row}")
            print()
            if self.opts.options:
                print("User defined parameters:")
                for key, value in self.opts.options.items():
                    print(f"  {key:<30} {go_value(value)}")
                print()
        elif what == "system":
            system = self.opts.system or resp.get("system") or ""
            print(system + "\n" if system else "No system message was specified for this model.")
        elif what == "template":
            print(resp.get("template") or "No prompt template was specified for this model.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")

    def load_model(self, args: list[str]) -> None:
        if len(args) != 2:
            print("Usage:\n  /load <modelname>")
            return
        previous = (self.opts.model, self.opts.messages)
        self.opts.model, self.opts.messages = args[1], []
        print(f"Loading model '{self.opts.model}'")
        try:
            self.info = self.client.json("POST", "/api/show", {"model": self.opts.model})
            self.load()
        except APIError as exc:
            if "not found" not in exc.message:
                raise
            print(f"Couldn't find model '{self.opts.model}'")
            self.opts.model, self.opts.messages = previous

    def save(self, args: list[str]) -> None:
        if len(args) != 2:
            print("Usage:\n  /save <modelname>")
            return
        body: dict[str, Any] = {"model": args[1], "from": self.opts.model}
        if self.opts.system:
            body["system"] = self.opts.system
        if self.opts.options:
            body["parameters"] = self.opts.options
        if self.opts.messages:
            body["messages"] = self.opts.messages
        try:
            for _ in self.client.stream("/api/create", body):
                pass
        except APIError as exc:
            print(f"error: {exc.message}")
            return
        print(f"Created new model '{args[1]}'")

    def send(self, text: str) -> None:
        self.opts.messages.append({"role": "user", "content": text})
        body: dict[str, Any] = {
            "model": self.opts.model,
            "messages": self.opts.messages,
            "options": self.opts.options,
        }
        if self.opts.format is not None:
            body["format"] = self.opts.format
        if self.opts.keep_alive is not None:
            body["keep_alive"] = self.opts.keep_alive
        try:
            answer = stream_answer(
                self.client.stream("/api/chat", body), wordwrap=self.opts.wordwrap
            )
        except APIError as exc:
            # One failed turn need not end the session; the message it failed on is dropped.
            self.opts.messages.pop()
            print(f"Error: {exc.message}", file=sys.stderr)
            return
        if answer.interrupted:
            return
        print("\n")
        if self.opts.verbose and answer.final:
            sys.stderr.write(metrics_summary(answer.final))
        self.opts.messages.append({"role": "assistant", "content": answer.content})


def _cut_suffix(text: str, suffix: str) -> tuple[str, bool]:
    if text.endswith(suffix):
        return text[: -len(suffix)], True
    return text, False
