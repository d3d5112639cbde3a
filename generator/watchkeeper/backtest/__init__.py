"""`watchkeeper backtest`: what the generated alerts would have done over real history.

The spec's rule files are generated in memory and taken as data (:mod:`.source`); recorded
series are inlined so the alerts read raw history (:mod:`.promql`); each alert is evaluated
with range queries in chunks and replayed through the rule manager's pending/firing/
keep_firing_for machine (:mod:`.engine`); episodes are summarised (:mod:`.report`) and drawn
(:mod:`.pictures`, needs the ``report`` extra).
"""
