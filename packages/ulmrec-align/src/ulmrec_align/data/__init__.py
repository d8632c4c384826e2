"""Data pipeline: raw Amazon 2014/2018 and RecBole readers, k-core filtering, dense ids, leave-one-out split.

Modules: :mod:`.pipeline` (``prepare_dataset``), :mod:`.config` (``PrepareConfig``), :mod:`.amazon` and
:mod:`.recbole` (readers), :mod:`.kcore`, :mod:`.text`, :mod:`.schema` / :mod:`.prepared` / :mod:`.split`
(the prepared-folder contract), :mod:`.users` (``USERS.jsonl``), :mod:`.stats`, :mod:`.synthetic`,
:mod:`.download` and :mod:`.cli` (``ulmrec data``). See docs/data.md.
"""
