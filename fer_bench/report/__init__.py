from fer_bench.report.collect import collect
from fer_bench.report.write import write_report, write_reports

__all__ = ["collect", "write_report", "write_reports"]
