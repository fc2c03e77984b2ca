// The report page's inline style and scripts (report_page.cpp): the page draws its
// charts as SVG from the runs' data, in the browser, with nothing fetched.
#pragma once

namespace unitrain::report {

// CSS of the page.
const char* report_style();
// Runs first: records every script error in <body data-errors="...">.
const char* report_error_hook();
// Draws the report from <script id="run-data"> (read_run's JSON, one entry per run) and
// records on <body> how many charts it meant to draw and how many drew:
// data-charts-expected, data-charts-drawn, data-status="done".
const char* report_script();

}  // namespace unitrain::report
