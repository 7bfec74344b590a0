<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\task;

/**
 * Daily: one notification per teacher in digest mode listing the alerts since the last run.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class send_digest extends \core\task\scheduled_task {
    /**
     * Name shown in the task list.
     *
     * @return string
     */
    public function get_name(): string {
        return get_string('taskdigest', 'local_riskstream');
    }

    /**
     * Send the digests and remember when.
     */
    public function execute(): void {
        $now = time();
        $since = (int)get_config('local_riskstream', 'lastdigest');
        $sent = \local_riskstream\digest::send($since);
        set_config('lastdigest', $now, 'local_riskstream');
        mtrace("local_riskstream: $sent digest(s) sent");
    }
}
