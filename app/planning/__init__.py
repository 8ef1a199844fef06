"""The staffing planner: seats per 15-minute interval from the show's rundown (Erlang C).

``erlang`` (the formulas, pure), ``rundown`` (the rundown: typed in, a CSV file, or
derived from an earlier campaign's calls), ``plan`` (a plan from a rundown and its
inputs, pure), ``service`` (what the database supplies: measured handle times, an
earlier campaign's arrivals), ``export`` (the plan as CSV), ``schemas``, ``endpoints``
(``/planning/...``) and ``cli`` (``pledgeline plan FILE``). See docs/surge.md.
"""
