"""Window statistics for the decision machine. PURE: numpy and plain floats.

``windows`` (one window's count, mean, standard deviation and Student-t interval, and the
newest window of a series), ``sample_rows`` (the same over a batch's padded rows at once),
``window_sums`` (the running sums both finish from), ``student_t`` (the t distribution in plain
Python) and ``bootstrap`` (percentile-bootstrap intervals over seeds, for simulation metrics and
calibration).
"""
