"""Built-in output formats."""

from ..engine.writers import BUILTIN_WRITERS
from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def register_output_formats(register):
    for name, (writer, description) in BUILTIN_WRITERS.items():
        register(name, writer, description)
