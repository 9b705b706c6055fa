from glidein_operator.cli import app

app(prog_name="glidein-operator")
