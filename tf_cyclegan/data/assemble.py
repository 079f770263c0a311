"""The one call the trainer needs: resolve, check and wrap a DataConfig."""

from tf_cyclegan.data.pipeline import UnpairedPipeline
from tf_cyclegan.data.preflight import check
from tf_cyclegan.data.sources import resolve


def prepare(data, global_batch, seed=0, report=print):
    """Resolves, checks and wraps a DataConfig into an UnpairedPipeline.

    ``report`` receives the pre-flight lines (warnings name each skipped file).
    """
    domains, reports = check(resolve(data), data)
    report(f"data: {domains.description}")
    for domain_report in reports:
        for line in domain_report.lines(data.image_size):
            report(line)
    return UnpairedPipeline(domains, data, global_batch, seed)
