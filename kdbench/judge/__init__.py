"""What the measurements say: the head verdict (verdict), bootstrap intervals over evaluation examples
(uncertainty), the CI regression gate (compare), terminal tables (render), and the report with the paper's claims
(report/). Imports every floor below it (core to train), never study or cli.
"""
