"""The plumbing the core leans on, apart from what it teaches: input checks at the package's doors (``checks``),
tasks side by side in threads or worker processes (``lanes``), the signature of the machine that made a result
(``machine``), files written whole or not at all (``files``) and a quiet Ctrl-C while starting (``startup``).

Like ``mamlkit.data``, it sits with the core in the import contracts (the core may import it; it imports no room),
but it is counted apart from the core's lines of code: nothing here is a lesson's subject.
"""
