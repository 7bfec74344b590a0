<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\external;

use context_system;
use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use invalid_parameter_exception;
use local_riskstream\feedback;

/**
 * local_riskstream_get_feedback: teachers' feedback rows with id > sinceid, for the connector.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_feedback extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'sinceid' => new external_value(PARAM_INT, 'Rows with id greater than this', VALUE_DEFAULT, 0),
            'limit' => new external_value(PARAM_INT, 'Rows per page, 1..1000', VALUE_DEFAULT, 500),
        ]);
    }

    /**
     * Feedback rows after sinceid, in id order.
     *
     * @param int $sinceid
     * @param int $limit
     * @return array
     */
    public static function execute(int $sinceid = 0, int $limit = 500): array {
        global $DB;
        $params = self::validate_parameters(self::execute_parameters(), ['sinceid' => $sinceid, 'limit' => $limit]);
        if ($params['limit'] < 1 || $params['limit'] > 1000 || $params['sinceid'] < 0) {
            throw new invalid_parameter_exception('limit must be 1..1000 and sinceid not negative');
        }
        $context = context_system::instance();
        self::validate_context($context);
        require_capability('local/riskstream:readfeedback', $context);
        $rows = $DB->get_records_select(feedback::TABLE, 'id > :sinceid', ['sinceid' => $params['sinceid']],
            'id ASC', '*', 0, $params['limit'] + 1);
        $hasmore = count($rows) > $params['limit'];
        $rows = array_slice(array_values($rows), 0, $params['limit']);
        $out = array_map(fn($r) => [
            'id' => (int)$r->id,
            'alertid' => $r->alertid,
            'courseid' => (int)$r->courseid,
            'userid' => (int)$r->userid,
            'teacherid' => (int)$r->teacherid,
            'action' => $r->action,
            'timecreated' => (int)$r->timecreated,
        ], $rows);
        $lastid = $out ? end($out)['id'] : $params['sinceid'];
        return ['feedback' => $out, 'lastid' => $lastid, 'hasmore' => $hasmore];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'feedback' => new external_multiple_structure(new external_single_structure([
                'id' => new external_value(PARAM_INT, 'Feedback id (increasing)'),
                'alertid' => new external_value(PARAM_ALPHANUMEXT, 'Alert id'),
                'courseid' => new external_value(PARAM_INT, 'Course'),
                'userid' => new external_value(PARAM_INT, 'Student the alert is about'),
                'teacherid' => new external_value(PARAM_INT, 'Teacher who answered'),
                'action' => new external_value(PARAM_ALPHA, 'acknowledged, contacted or notuseful'),
                'timecreated' => new external_value(PARAM_INT, 'When'),
            ])),
            'lastid' => new external_value(PARAM_INT, 'The next sinceid'),
            'hasmore' => new external_value(PARAM_BOOL, 'More rows after lastid'),
        ]);
    }
}
