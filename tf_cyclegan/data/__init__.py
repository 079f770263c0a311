"""Unpaired input pipelines: sources (bundled sample, folders, TFDS), checks, tf.data."""

from tf_cyclegan.data.check import DomainReport, check
from tf_cyclegan.data.pipeline import UnpairedPipeline, steps_per_epoch
from tf_cyclegan.data.sources import DataError, Domain, Domains, list_folder, resolve


def prepare(data, global_batch, seed=0, report=print):
    """Resolves, checks and wraps a DataConfig: the one call the trainer needs.

    ``report`` receives the pre-flight lines (warnings name each skipped file).
    """
    domains, reports = check(resolve(data), data)
    report(f"data: {domains.description}")
    for domain_report in reports:
        for line in domain_report.lines(data.image_size):
            report(line)
    return UnpairedPipeline(domains, data, global_batch, seed)


__all__ = [
    "DataError", "Domain", "DomainReport", "Domains", "UnpairedPipeline", "check", "list_folder", "prepare",
    "resolve", "steps_per_epoch",
]
