"""The job lifecycle: the state machine, record conversion, the unit of work and its event port.

The client, the colony, the daemons and the recurring engine all change jobs through this package
and only through it; it depends on ``core``, ``storage.protocol`` and ``mediator`` alone.
"""
