"""The pure domain: jobs, states, invocations, the codec, priorities, options and retry maths.

Nothing here does I/O; it imports nothing of HiveMind but ``errors``.
"""
