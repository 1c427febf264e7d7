"""Hook implementations of the ``du-imaging`` plugin."""
