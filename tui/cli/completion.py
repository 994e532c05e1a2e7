"""``glasskey completion bash|zsh|fish``: a completion script generated from the parser
itself, so it never goes stale.

The model is per command: its options (those of every action, as the flat parser had
them) and the words of its first positional argument (the actions). Only the
documented commands (DOCS) are offered.
"""

from __future__ import annotations

import argparse
import sys

from glasskey.tui.cli.docs import DOCS
from glasskey.tui.cli.parser import Commands, Parser, leaves


def _options(parser: Parser) -> list[str]:
    """The long options of every form of a command, each once, in definition order."""
    seen: dict[str, None] = {}
    for form in (parser, *leaves(parser)):
        for act in form._actions:
            if act.help != argparse.SUPPRESS and act.option_strings:
                seen.update((o, None) for o in act.option_strings if o.startswith("--"))
    return list(seen)


def _first_choices(parser: Parser) -> list[str]:
    """The words a positional argument takes (the actions' names), if fixed."""
    for act in parser._actions:
        if not act.option_strings and act.choices and act.help != argparse.SUPPRESS:
            return [str(c) for c in act.choices]
    return []


def completion_model(parser: Parser) -> dict[str, tuple[list[str], list[str]]]:
    """Command -> (its options, the choices of its first positional argument)."""
    return {name: (_options(p), _first_choices(p)) for name, p in parser.subcommands.items()}


def completion_script(parser: Parser, shell: str) -> str:
    """A completion script generated from the parser itself, so it never goes stale."""
    model = completion_model(parser)
    commands = " ".join(model)
    globals_ = "--vault --json --version --help"
    if shell == "fish":
        lines = ["# glasskey completion for fish: glasskey completion fish | source",
                 "complete -c glasskey -f",
                 "complete -c glasskey -n __fish_use_subcommand -l vault -r -F",
                 "complete -c glasskey -n __fish_use_subcommand -l json",
                 "complete -c glasskey -n __fish_use_subcommand -l version"]
        for name, (options, choices) in model.items():
            desc = DOCS[name][0].split(". ")[0].rstrip(".").replace("'", "")
            lines.append(f"complete -c glasskey -n __fish_use_subcommand -a {name} "
                         f"-d '{desc}'")
            cond = f"'__fish_seen_subcommand_from {name}'"
            if choices:
                lines.append(f"complete -c glasskey -n {cond} -a '{' '.join(choices)}'")
            for opt in options:
                lines.append(f"complete -c glasskey -n {cond} -l {opt[2:]}")
        return "\n".join(lines) + "\n"
    cases = "\n".join(f"    {name}) words='{' '.join(choices + options)}' ;;"
                      for name, (options, choices) in model.items())
    body = f"""_glasskey() {{
  local cur prev cmd words i
  COMPREPLY=()
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  case "$prev" in
    --vault|--*-file|--file|--output) return 0 ;;
  esac
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      --vault) ((i++)) ;;
      -*) ;;
      *) cmd="${{COMP_WORDS[i]}}"; break ;;
    esac
  done
  case "$cmd" in
    "") words='{commands} {globals_}' ;;
{cases}
    *) words='' ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}}
complete -o default -F _glasskey glasskey
"""
    if shell == "zsh":
        return ("# glasskey completion for zsh: eval \"$(glasskey completion zsh)\"\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + body)
    return "# glasskey completion for bash: eval \"$(glasskey completion bash)\"\n" + body


def completion(*, shell: str) -> int:
    from glasskey.tui.cli.build import build_parser

    sys.stdout.write(completion_script(build_parser(), shell))
    return 0


def add_completion_parser(cmds: Commands) -> None:
    p = cmds.command("completion", handler=completion)
    p.add_argument("shell", choices=["bash", "zsh", "fish"])


PARSERS = {"completion": add_completion_parser}
