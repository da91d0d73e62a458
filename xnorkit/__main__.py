"""`python -m xnorkit` and the `xnorkit` script. SIGINT and SIGTERM are one line (exit 130) from the first
instruction on: the CLI's imports take a second, and an interrupt there would otherwise print a traceback."""

import os
import sys


def run() -> None:
    from xnorkit.outputs import interrupt_as_exception, stop_interrupts

    interrupt_as_exception()
    try:
        from xnorkit.cli import main

        main()
        code = 0
    except SystemExit as e:
        stop_interrupts()
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:  # one main() did not catch itself (in its first lines)
        stop_interrupts()
        print("xnorkit: error: interrupted; every output is as it was before or complete", file=sys.stderr)
        code = 130
    # the work is done or undone: leave without the interpreter's shutdown, where a late signal would break
    # into some finalizer and print a traceback
    stop_interrupts()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
