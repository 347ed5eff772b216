"""Process memory, allocator state, fragmentation, GC pauses and memory over time.

Every figure comes with its written definition (:data:`mcpprof.memory.procmem.DEFINITIONS`,
:data:`mcpprof.memory.fragmentation.DEFINITIONS`). The readers that run inside a server
(``allocators``, ``gcpauses``, ``timeline``, ``control``) are stdlib only and do nothing at import.
"""
