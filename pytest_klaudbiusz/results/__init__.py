"""From app results to the evaluation report: the result model, aggregation, report files,
generation cost, dataset digest, trend chart.
"""
